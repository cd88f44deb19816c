"""DVC stage split: read the PPOCRLabel folder named by params split.input and write data/split."""

import json
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this project's ocrforge, whichever Python runs it
import ocrforge.environment  # noqa: E402,F401  (one line saying what to run when this Python lacks the stack)
from ocrforge.data.ppocrlabel import load_ppocrlabel
from ocrforge.data.split import format_summary, split_dataset
from ocrforge.log import get_logger
from ocrforge.params import load_params, section
from ocrforge.resources import read_dictionary

OUT_DIR = Path("data/split")
METRICS = Path("reports/split.json")


def main() -> None:
    log = get_logger("stage.split")
    params = load_params()
    p = section(params, "split")
    d = section(params, "dictionary")
    source = Path(p["input"])
    label_file = source / "Label.txt" if source.is_dir() else source
    labels = load_ppocrlabel(label_file, on_error=p["on_label_error"])
    chars = read_dictionary(d["character_dict_path"], bool(d["use_space_char"]))
    summary = split_dataset(
        labels,
        OUT_DIR,
        ratio=str(p["ratio"]),
        seed=int(p["seed"]),
        chars=chars,
        max_text_length=int(d["max_text_length"]),
    )
    log.info("%s", format_summary(summary))
    if summary["layout"]["warning"]:
        log.warning("%s", summary["layout"]["warning"])
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    counts = {name: dict(c) for name, c in summary["splits"].items()}
    metrics = {
        "splits": counts,
        "input": summary["input"],
        "labels_with_missing_chars": summary["dictionary"]["labels_with_missing_chars"],
        "labels_too_long": summary["dictionary"]["labels_too_long"],
        "layout": summary["layout"]["layout"],
        "layout_warning": summary["layout"]["warning"],
    }
    METRICS.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
