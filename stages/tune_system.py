"""DVC stage tune_system: choose the reading system's drop_score on the val split, by end-to-end line hmean
(params: tune_system, the system section, eval.detector and eval.case_sensitive). The trained detector (with
the post-process its own val search chose) and recogniser read each val image once; every threshold of
tune_system.drop_score is then scored on those reads (ocrforge/system_search.py).

Writes reports/tune_system/system.json: every threshold's figures and the one chosen, which the eval and export
stages use where params.yaml's system.drop_score is empty (a value there wins, as for the DB post-process).
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
from ocrforge.system_search import search_drop_score


def main() -> None:
    args = stage_parser(__doc__, data="the split folder (its det/val.txt is what the choice is made on)",
                        det="the detector's training run (params eval.detector)",
                        rec="the recogniser's training run", out="the JSON file to write").parse_args()
    log = get_logger("stage.tune_system")
    params = load_params()
    values = [float(v) for v in (section(params, "tune_system").get("drop_score") or [])]
    overrides = system_overrides(params)
    case_sensitive = bool((params.get("eval") or {}).get("case_sensitive", True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not values:
        out.write_text(json.dumps({"searched": False}, indent=2) + "\n", encoding="utf-8")
        log.info("tune_system.drop_score is empty: no search; the system drops lines below %s",
                 overrides.get("drop_score", "0.5 (the default)"))
        return
    samples = load_det_label_file(Path(args.data) / "det" / "val.txt", args.data)
    if not samples:
        raise SystemExit(f"{args.data}/det/val.txt lists no images: the val split is empty; give the split stage more "
                         f"images or a larger val share (split.ratio), or set tune_system.drop_score: [] to skip this")
    checkpoint = (params.get("eval") or {}).get("checkpoint", "best_accuracy")
    system = load_trained_system(args.det, args.rec, checkpoint, **overrides)
    result = search_drop_score(system, samples, values, case_sensitive, logger=log)
    result["applied"] = "params" if "drop_score" in overrides else "best"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for row in result["rows"]:
        log.info("drop_score %.2f: val e2e P %.4f R %.4f hmean %.4f, full text %.4f (%d lines kept)",
                 row["drop_score"], row["precision"], row["recall"], row["hmean"], row["full_text_acc"],
                 row["lines_kept"])
    best, configured = result["best"], result["configured"]
    if result["applied"] == "params":
        log.info("params.yaml sets system.drop_score %.2f, which eval and export keep (best on val: %.2f, hmean %.4f "
                 "against %.4f)", configured["drop_score"], best["drop_score"], best["hmean"], configured["hmean"])
    else:
        log.info("chosen: drop_score %.2f (val e2e hmean %.4f, against %.4f at the default %.2f); eval and export "
                 "read it from %s", best["drop_score"], best["hmean"], configured["hmean"], configured["drop_score"],
                 out)


if __name__ == "__main__":
    main()
