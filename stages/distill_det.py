"""DVC stage distill_det: train a small MobileNetV3 detector (the Student of configs/det/distill_det.yml) from
the detector train_det fine-tuned, frozen as the Teacher (params: distill_det). With ``pretrained_model: shipped``
both students start from the PP-OCRv3 detector that stage ppocrv3_det converted.

The Student is what eval/export use when params.yaml's ``detector`` is ``models/distill_det``."""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.config import load_config
from ocrforge.log import get_logger
from ocrforge.params import load_params, section, stage_parser
from ocrforge.postprocess_search import search_after_training
from ocrforge.recipe import det_config_from_params
from ocrforge.training import run_training_stage


def main() -> None:
    args = stage_parser(__doc__, data="the split folder (det/ and rec/ label files)",
                        out="the training run's folder: checkpoints, config.yml, train.log",
                        reports="the reports folder: dvclive curves, summary, report.md/json, timing").parse_args()
    data_dir, out_dir, report_dir = args.data, args.out, Path(args.reports)
    log = get_logger("stage.distill_det", log_file=Path(out_dir) / "train.log")
    p = dict(section(load_params(), "distill_det"))
    # Students with weights (shipped: PP-OCRv3) are evaluated before training, as train_det does; random ones not.
    p["overrides"] = {"Global.teacher_model": p["teacher_model"],
                      "Global.eval_before_training": bool(p.get("pretrained_model")), **(p.get("overrides") or {})}
    config = det_config_from_params(load_config(p["config"]), p, data_dir, out_dir, str(report_dir / "dvclive"),
                                    section_name="distill_det")
    run_training_stage(config, p.get("analysis"), report_dir, log)
    # the Student's own post-process pair, chosen on val over train_det's grid as train_det chooses the teacher's:
    # deploying it (eval.detector: models/distill_det) then compares like with like
    grid = section(load_params(), "train_det").get("postprocess_search")
    search_after_training(out_dir, data_dir, grid, report_dir, log)


if __name__ == "__main__":
    main()
