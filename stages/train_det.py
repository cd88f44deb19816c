"""DVC stage train_det: fine-tune the PP-OCRv4 text detector on the split (params: train_det)."""

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
    log = get_logger("stage.train_det", log_file=Path(out_dir) / "train.log")
    p = section(load_params(), "train_det")
    config = det_config_from_params(load_config(p["config"]), p, data_dir, out_dir, str(report_dir / "dvclive"))
    run_training_stage(config, p.get("analysis"), report_dir, log)
    search_after_training(out_dir, data_dir, p.get("postprocess_search"), report_dir, log)


if __name__ == "__main__":
    main()
