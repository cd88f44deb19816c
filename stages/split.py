"""DVC stage split: a PPOCRLabel folder into train/val/test det and rec data (params: split, dictionary)."""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.data.ppocrlabel import load_ppocrlabel
from ocrforge.data.split import format_summary, split_dataset
from ocrforge.log import get_logger
from ocrforge.params import load_params, section, stage_parser
from ocrforge.resources import read_dictionary


def main() -> None:
    args = stage_parser(__doc__, input="the PPOCRLabel folder (or its Label.txt): params split.input",
                        out="the split folder to write (PaddleOCR's data_dir)",
                        report="the split's metrics file (JSON)").parse_args()
    log = get_logger("stage.split")
    params = load_params()
    p = section(params, "split")
    d = section(params, "dictionary")
    source = Path(args.input)
    label_file = source / "Label.txt" if source.is_dir() else source
    labels = load_ppocrlabel(label_file, on_error=p["on_label_error"])
    chars = read_dictionary(d["character_dict_path"], bool(d["use_space_char"]))
    summary = split_dataset(
        labels,
        Path(args.out),
        ratio=str(p["ratio"]),
        seed=int(p["seed"]),
        chars=chars,
        max_text_length=int(d["max_text_length"]),
    )
    log.info("%s", format_summary(summary))
    if summary["layout"]["warning"]:
        log.warning("%s", summary["layout"]["warning"])
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    counts = {name: dict(c) for name, c in summary["splits"].items()}
    metrics = {
        "splits": counts,
        "input": summary["input"],
        "labels_with_missing_chars": summary["dictionary"]["labels_with_missing_chars"],
        "labels_too_long": summary["dictionary"]["labels_too_long"],
        "layout": summary["layout"]["layout"],
        "layout_warning": summary["layout"]["warning"],
    }
    report.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
