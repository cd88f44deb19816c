"""DVC stage eval: the trained (dygraph) detector + recogniser on the test split (params: eval, and the
system section: the reading system's settings, which the export stage deploys alike; an empty
system.drop_score or det_db_unclip_ratio is the one stage tune_system chose on the val split).

Writes reports/eval/metrics.json, predictions.jsonl, gallery/ and README.md; with ``eval.zero_shot``, also the
off-the-shelf models' figures on the same images (section ``zero_shot``); and misses.json, where the end-to-end
misses are (ocrforge/miss_analysis.py: which part to improve), with its section in the README. Any PPOCRLabel
folder can be evaluated through the same code, outside the pipeline:

    ocrforge stage eval --input ../shared/datasets/sroie100 --out reports/eval_sroie100 --case-insensitive

(``ocrforge stage`` adds dvc.yaml's arguments: the models, the split; later options win.)
"""

import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.data.det_labels import load_testset
from ocrforge.evaluate import evaluate
from ocrforge.log import get_logger
from ocrforge.miss_analysis import write_misses
from ocrforge.params import evaluation_parser, load_params, system_overrides
from ocrforge.system import load_trained_system
from ocrforge.system_search import tuned_overrides


def main() -> None:
    params = load_params()
    p = params.get("eval") or {}
    args = evaluation_parser(__doc__, p, data="the split folder (its det/test.txt is the test set)",
                             det="the detector's training run (params eval.detector)",
                             rec="the recogniser's training run", out="the reports folder to write",
                             tuned="the drop_score and unclip ratio tune_system chose (its system.json)").parse_args()
    log = get_logger("stage.eval")
    samples = load_testset(args.input or args.data, args.limit)
    system = load_trained_system(args.det, args.rec, p.get("checkpoint", "best_accuracy"),
                                 **tuned_overrides(system_overrides(params), args.tuned))
    log.info("the system boxes text at unclip ratio %.2f and drops lines read below %.2f (params.yaml's system "
             "section, or what tune_system chose on val)", system.settings.det_db_unclip_ratio,
             system.settings.drop_score)
    evaluate(system, samples, args.out, gallery_size=int(p.get("gallery_size", 12)),
             case_sensitive=not args.case_insensitive, logger=log, zero_shot=p.get("zero_shot") or ())
    misses = write_misses(args.out, case_sensitive=not args.case_insensitive)
    log.info("end-to-end misses, %d of %d lines: %s; %d predicted lines match no label (%s/misses.json)",
             misses["missed"], misses["lines"],
             ", ".join(f"{kind} {entry['count']}" for kind, entry in misses["kinds"].items()),
             misses["unlabelled_boxes"]["count"], args.out)


if __name__ == "__main__":
    main()
