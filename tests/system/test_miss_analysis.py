"""Where the end-to-end misses are: each kind found on real reads of a known image, and by its rule."""

import json

import cv2
import pytest

from ocrforge.data.det_labels import load_det_label_file
from ocrforge.evaluate import evaluate
from ocrforge.miss_analysis import analyse_misses, read_predictions, write_misses

# a blank stretch of the known image (its words end at y ~ 155), where no text is printed
BLANK = [[260, 160], [380, 160], [380, 192], [260, 192]]


def _label(text: str, points) -> dict:
    return {"transcription": text, "difficult": False, "points": points}


def test_each_kind_on_a_real_evaluation(trained_system, known_image, tmp_path):
    image, boxes = known_image  # LOT4711 EXP2027 / SN12345, which the trained system reads right
    lot, exp, sn = boxes
    rows = {
        # EXP2027 labelled with a space; SN12345 not labelled; a label where nothing is printed
        "mixed.png": [lot, _label("EXP 2027", exp["points"]), _label("GHOST", BLANK)],
        "wrong.png": [lot, exp, _label("SN99999", sn["points"])],  # a label slip
    }
    (tmp_path / "det" / "images").mkdir(parents=True)
    for name, labels in rows.items():
        cv2.imwrite(str(tmp_path / "det" / "images" / name), image)
    (tmp_path / "det" / "test.txt").write_text(
        "".join(f"det/images/{name}\t{json.dumps(labels)}\n" for name, labels in rows.items()))
    samples = load_det_label_file(tmp_path / "det" / "test.txt", tmp_path)
    metrics = evaluate(trained_system, samples, tmp_path / "eval", gallery_size=0)

    misses = write_misses(tmp_path / "eval")
    assert misses["lines"] == metrics["lines"] == 6
    assert misses["read"] == round(metrics["e2e"]["recall"] * 6) == 3  # the metric's own matches
    counts = {kind: entry["count"] for kind, entry in misses["kinds"].items()}
    assert counts == {"no_line": 1, "spaces_only": 1, "box_shape": 0, "misread": 1}
    assert misses["kinds"]["no_line"]["examples"] == [{"image": "det/images/mixed.png", "label": "GHOST",
                                                       "split": False, "merged": False}]
    assert misses["kinds"]["no_line"]["dropped"] == 0  # the detector found no box there either
    assert misses["kinds"]["spaces_only"]["examples"][0]["read"] == "EXP2027"
    slip = misses["kinds"]["misread"]["examples"][0]
    assert (slip["label"], slip["read"], slip["label_crop_read"]) == ("SN99999", "SN12345", "SN12345")
    extra = misses["unlabelled_boxes"]
    assert extra["count"] == 1 and extra["examples"][0]["read"] == "SN12345"
    assert 0.5 < extra["examples"][0]["score"] <= 1.0

    assert json.loads((tmp_path / "eval" / "misses.json").read_text()) == misses
    readme = (tmp_path / "eval" / "README.md").read_text()
    assert readme.count("## Where the end-to-end misses are") == 1 and "`GHOST`" in readme
    write_misses(tmp_path / "eval")  # a second pass replaces its section, not adds one
    assert (tmp_path / "eval" / "README.md").read_text() == readme


def _record(gt: list, pred: list, crops: list, det_matched: int) -> dict:
    """A predictions.jsonl row: ``gt`` [(text, box)], ``pred`` [(text, box)], the reads of the labelled crops."""
    return {"image": "a.png",
            "gt": [{"box": box, "text": text, "ignore": False} for text, box in gt],
            "pred": {"lines": [{"box": box, "text": text, "score": 0.9} for text, box in pred]},
            "rec_on_gt_crops": [{"gt": text, "pred": read} for (text, _), read in zip(gt, crops)],
            "det": {"gt_care": len(gt), "det_care": len(pred), "matched": det_matched}}


def _box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_box_shape_split_and_dropped_by_their_rules():
    cut = _record([("TOTAL:", _box(0, 0, 60, 10))], [("TOTAL", _box(0, 0, 52, 10))], ["TOTAL:"], 1)
    split = _record([("DATE: 12/02/2018", _box(0, 0, 200, 10))],  # two pieces, each at IoU < 0.5
                    [("DATE:", _box(0, 0, 60, 10)), ("12/02/2018", _box(80, 0, 170, 10))], ["DATE: 12/02/2018"], 0)
    # the detector boxed both lines (det matched 2), but only one read line came out: the other was dropped
    dropped = _record([("AB12", _box(0, 0, 40, 10)), ("CD34", _box(0, 20, 40, 30))],
                      [("AB12", _box(0, 0, 40, 10))], ["AB12", "CD34"], 2)
    merged = _record([("A1", _box(0, 0, 20, 10)), ("B2", _box(30, 0, 50, 10))],  # one box over both, IoU 0.4
                     [("A1 B2", _box(0, 0, 50, 10))], ["A1", "B2"], 0)
    misses = analyse_misses([cut, split, dropped, merged])
    assert (misses["lines"], misses["read"]) == (6, 1)
    assert misses["kinds"]["box_shape"]["count"] == 1
    assert misses["kinds"]["box_shape"]["examples"][0]["read"] == "TOTAL"
    no_line = misses["kinds"]["no_line"]
    assert (no_line["count"], no_line["split"], no_line["merged"], no_line["dropped"]) == (4, 1, 2, 1)
    assert misses["unlabelled_boxes"]["count"] == 3  # the two pieces of the split line, the merged box
    # case folds only when asked, as the metric does
    upper = _record([("Lot 7", _box(0, 0, 50, 10))], [("LOT 7", _box(0, 0, 50, 10))], ["LOT 7"], 1)
    assert analyse_misses([upper])["kinds"]["misread"]["count"] == 1
    assert analyse_misses([upper], case_sensitive=False)["read"] == 1


def test_a_broken_predictions_file_is_named(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"image": "a.png", "gt": [], "pred": {"lines": []}}\n{"image": \n')
    with pytest.raises(ValueError, match=r"predictions.jsonl:2: not a JSON line .*rerun the eval stage"):
        read_predictions(path)
