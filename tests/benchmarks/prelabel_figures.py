"""The pre-label figures of the README ("Pre-label new images") on plates_eu_br: how often a model's pre-label
needs no correction, and whether the least-certain ranking puts the wrong ones first.

    python tests/benchmarks/prelabel_figures.py predict EXPORT_DIR WORK_DIR   # prelabel val+test into WORK_DIR
    python tests/benchmarks/prelabel_figures.py score WORK_DIR [WORK_DIR ...]  # the figures, as JSON + table

val+test are the split stage's (ratio 6:2:2, seed 42 on the dataset's 221 images), so a model fine-tuned with
split.input at the dataset never saw them. An image's pre-label is *exactly right* when it holds exactly one
line, that line's text is the plate's transcription and its box overlaps the labelled plate with IoU >= 0.5
(*raw*: the text as read; *convention*: upper-cased with spaces, dots, dashes and middle dots removed, the
dataset's convention, i.e. what a fixed post-processing rule would give). *Text found* ignores the boxes and
the other lines: some line reads the plate (convention).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "plates_eu_br"
IOU_MIN = 0.5
TOP_SHARE = 0.2


def convention(text: str) -> str:
    return re.sub(r"[\s.\-·•_]", "", text).upper()


def heldout_images():
    from ocrforge.data.ppocrlabel import load_ppocrlabel
    from ocrforge.data.split import SplitRatio, assign_splits

    labels = load_ppocrlabel(DATASET / "Label.txt")
    splits = assign_splits(labels.images, SplitRatio.parse("6:2:2"), 42)
    return splits["val"] + splits["test"]


def predict(export_dir: Path, work: Path) -> None:
    from ocrforge.prelabel import open_reader, prelabel_folder
    from ocrforge.system import read_manifest

    folder = work / "heldout"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    gt = {}
    for image in heldout_images():
        shutil.copyfile(image.path, folder / image.path.name)
        (line,) = image.lines
        gt[image.path.name] = {"text": line.text, "points": [list(p) for p in line.points]}
    (work / "gt.json").write_text(json.dumps(gt, indent=1))
    reader, close = open_reader(export_dir)
    try:
        prelabel_folder(folder, reader, drop_score=float(read_manifest(export_dir)["settings"]["drop_score"]),
                        model_dir=export_dir)
    finally:
        close()


def auroc(confidence: list[float], wrong: list[bool]) -> float:
    """P(a wrong image ranks before a right one), ties half: 1.0 = every wrong one first, 0.5 = chance."""
    bad = [c for c, w in zip(confidence, wrong) if w]
    good = [c for c, w in zip(confidence, wrong) if not w]
    if not bad or not good:
        return float("nan")
    wins = sum((b < g) + 0.5 * (b == g) for b in bad for g in good)
    return wins / (len(bad) * len(good))


def score(work: Path) -> dict:
    from ocrforge.metrics.det_metric import as_polygon, iou

    gt = json.loads((work / "gt.json").read_text())
    folder = work / "heldout"
    report = json.loads((folder / "prelabel_report.json").read_text())
    preds = {}
    for row in (folder / "Label.txt").read_text(encoding="utf-8").splitlines():
        key, _, payload = row.partition("\t")
        preds[key.rsplit("/", 1)[-1]] = json.loads(payload)
    per_image = {}
    for name, truth in gt.items():
        lines = preds[name]
        gt_poly = as_polygon(truth["points"])
        one = len(lines) == 1
        overlap = one and iou(as_polygon(lines[0]["points"]), gt_poly) >= IOU_MIN
        per_image[name] = {
            "raw": bool(overlap and lines[0]["transcription"] == truth["text"]),
            "convention": bool(overlap and convention(lines[0]["transcription"]) == truth["text"]),
            "text_found": any(convention(l["transcription"]) == truth["text"] for l in lines),
            "lines": len(lines),
        }
    n = len(per_image)
    out = {"images": n, "model_dir": report["model_dir"]}
    for kind in ("raw", "convention", "text_found"):
        out[f"right_{kind}"] = round(sum(v[kind] for v in per_image.values()) / n, 4)
    rows = {r["image"].rsplit("/", 1)[-1]: r for r in report["order"]}
    top = math.ceil(TOP_SHARE * n)
    measures = {}
    names = sorted(per_image)
    wrong = [not per_image[k]["convention"] for k in names]
    wrong_rate = sum(wrong) / n
    candidates = [(m, None) for m in ("min_score", "mean_score", "min_read_score", "product_score")]
    candidates += [("min_score", 1), ("product_score", 1)]  # --expected-lines 1: one plate per photo
    for measure, expected in candidates:
        label = measure if expected is None else f"{measure} --expected-lines {expected}"
        # the confidence prelabel_folder gives (confidence_row): the measure, less |lines - expected|
        conf = [rows[k][measure] - (abs(rows[k]["lines"] - expected) if expected is not None else 0) for k in names]
        order = sorted(range(n), key=lambda i: (conf[i], names[i]))
        first = order[:top]
        measures[label] = {
            "wrong_in_first_20pct": round(sum(wrong[i] for i in first) / top, 4),
            "share_of_wrong_caught_in_first_20pct": round(sum(wrong[i] for i in first) / max(1, sum(wrong)), 4),
            "auroc": round(auroc(conf, wrong), 4),
        }
    out["wrong_rate_convention"] = round(wrong_rate, 4)
    out["first_20pct_images"] = top
    out["ranking"] = measures
    return out


def main(argv: list[str]) -> None:
    if argv[:1] == ["predict"] and len(argv) == 3:
        predict(Path(argv[1]), Path(argv[2]))
    elif argv[:1] == ["score"] and len(argv) >= 2:
        results = {w: score(Path(w)) for w in argv[1:]}
        print(json.dumps(results, indent=2))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
