"""DVC stage tune_system: choose the reading system's drop_score and the detector's unclip ratio on the val split,
by end-to-end line hmean (params: tune_system, the system section, eval.detector and eval.case_sensitive). The
trained detector (with the post-process its own val search chose) runs once per val image; its maps are boxed at
each unclip ratio (its own and tune_system.unclip_ratio), the recogniser reads every box, and every threshold of
tune_system.drop_score is then scored on those reads (ocrforge/system_search.py).

Writes reports/tune_system/system.json: every pair's figures and the one chosen, which the eval and export
stages use where params.yaml's system section is empty (a value there is fixed, and the search chooses the other
around it).
"""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
import ocrforge  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from ocrforge.data.det_labels import load_det_label_file
from ocrforge.log import get_logger
from ocrforge.params import load_params, section, stage_parser, system_overrides
from ocrforge.system import load_trained_system
from ocrforge.system_search import search_system


def main() -> None:
    args = stage_parser(__doc__, data="the split folder (its det/val.txt is what the choice is made on)",
                        det="the detector's training run (params eval.detector)",
                        rec="the recogniser's training run", out="the JSON file to write").parse_args()
    log = get_logger("stage.tune_system")
    params = load_params()
    grid = section(params, "tune_system")
    overrides = system_overrides(params)
    # a value params.yaml's system section sets is fixed; the search chooses the others around it
    drop_scores = [] if "drop_score" in overrides else [float(v) for v in grid.get("drop_score") or []]
    unclip_ratios = ([] if "det_db_unclip_ratio" in overrides
                     else [float(v) for v in grid.get("unclip_ratio") or []])
    case_sensitive = bool((params.get("eval") or {}).get("case_sensitive", True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not drop_scores and not unclip_ratios:
        out.write_text(json.dumps({"searched": False}, indent=2) + "\n", encoding="utf-8")
        log.info("nothing to search (tune_system's lists empty, or the system section sets both values): the system "
                 "drops lines below %s with the detector's unclip ratio %s",
                 overrides.get("drop_score", "0.5 (the default)"),
                 overrides.get("det_db_unclip_ratio", "(its own search's choice)"))
        return
    samples = load_det_label_file(Path(args.data) / "det" / "val.txt", args.data)
    if not samples:
        raise SystemExit(f"{args.data}/det/val.txt lists no images: the val split is empty; give the split stage more "
                         f"images or a larger val share (split.ratio), or set tune_system's lists to [] to skip this")
    checkpoint = (params.get("eval") or {}).get("checkpoint", "best_accuracy")
    system = load_trained_system(args.det, args.rec, checkpoint, **overrides)
    result = search_system(system, samples, drop_scores, unclip_ratios, case_sensitive, logger=log)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for row in result["rows"]:
        log.info("unclip %.2f, drop_score %.2f: val e2e P %.4f R %.4f hmean %.4f, full text %.4f (%d lines kept)",
                 row["unclip_ratio"], row["drop_score"], row["precision"], row["recall"], row["hmean"],
                 row["full_text_acc"], row["lines_kept"])
    best, configured = result["best"], result["configured"]
    log.info("chosen: unclip ratio %.2f, drop_score %.2f (val e2e hmean %.4f, against %.4f at the detector's %.2f "
             "and %.2f); eval and export read it from %s (a value params.yaml's system section sets stays fixed)",
             best["unclip_ratio"], best["drop_score"], best["hmean"], configured["hmean"],
             configured["unclip_ratio"], configured["drop_score"], out)
    ratios = sorted({row["unclip_ratio"] for row in result["rows"]})
    if len(ratios) > 1 and best["unclip_ratio"] in (ratios[0], ratios[-1]):
        edge = "largest" if best["unclip_ratio"] == ratios[-1] else "smallest"
        log.info("the unclip ratio chosen is the %s tried: one beyond it may read better still; add it to "
                 "tune_system.unclip_ratio to try it", edge)

if __name__ == "__main__":
    main()
