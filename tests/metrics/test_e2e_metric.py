import numpy as np
import pytest

from ocrforge.metrics import E2EMetric, full_text, reading_lines, reading_order, score_end_to_end


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


# Two lines: "TOTAL 12.50 RM" (three boxes, the middle one 2 px lower), then "CASH 20.00"; shuffled.
BOXES = [rect(0, 22, 40, 32), rect(60, 2, 90, 12), rect(0, 0, 40, 10), rect(100, 0, 120, 10), rect(50, 22, 90, 32)]
TEXTS = ["CASH", "12.50", "TOTAL", "RM", "20.00"]


def test_reading_order_two_lines_three_boxes_on_the_first():
    assert reading_lines(BOXES) == [[2, 1, 3], [0, 4]]
    assert reading_order(BOXES) == [2, 1, 3, 0, 4]
    assert full_text(BOXES, TEXTS) == "TOTAL 12.50 RM\nCASH 20.00"
    assert reading_order([]) == []


def test_boxes_half_a_line_apart_start_a_new_line():
    assert reading_lines([rect(0, 0, 10, 10), rect(20, 6, 30, 16)]) == [[0], [1]]
    assert reading_lines([rect(20, 4, 30, 14), rect(0, 0, 10, 10)]) == [[1, 0]]


def lines(boxes, texts, **extra):
    return [{"points": b, "text": t, **extra} for b, t in zip(boxes, texts)]


def test_line_and_full_text_scores():
    gts = lines(BOXES, TEXTS)
    perfect = score_end_to_end(lines(BOXES, TEXTS), gts)
    assert (perfect["matched"], perfect["det_care"], perfect["gt_care"], perfect["full_text_match"]) == (5, 5, 5, True)

    metric = E2EMetric()
    wrong_text = TEXTS[:4] + ["20.0O"]
    moved = BOXES[:3] + [rect(110, 0, 130, 10), BOXES[4]]  # "RM" box at IoU 1/3
    metric([lines(BOXES, TEXTS), lines(BOXES, wrong_text), lines(moved, TEXTS)], [gts, gts, gts])
    figures = metric.get_metric()
    assert figures["precision"] == pytest.approx(13 / 15)
    assert figures["recall"] == pytest.approx(13 / 15)
    assert figures["hmean"] == pytest.approx(13 / 15)
    assert figures["full_text_acc"] == pytest.approx(2 / 3)  # a moved box still reads the same
    assert metric.main_indicator == "hmean"

    # scoring images first and adding the scores counts the same
    added = E2EMetric()
    for preds in (lines(BOXES, TEXTS), lines(BOXES, wrong_text), lines(moved, TEXTS)):
        added.add(score_end_to_end(preds, gts, added.iou_threshold, added.normalize))
    assert added.get_metric() == figures


def test_case_spaces_and_ignored_lines():
    gts = [{"points": rect(0, 0, 40, 10), "transcription": "TOTAL RM", "difficult": False},
           {"points": rect(0, 20, 40, 30), "transcription": "###", "difficult": False}]
    preds = [(rect(0, 0, 40, 10), "Total  RM", 0.9), (rect(2, 21, 38, 29), "smudge", 0.5)]
    strict = score_end_to_end(preds, gts)
    assert (strict["matched"], strict["det_care"], strict["gt_care"]) == (0, 1, 1)
    metric = E2EMetric(ignore_space=True, case_sensitive=False)
    metric([preds], [gts])
    assert metric.get_metric() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "full_text_acc": 1.0}


def test_no_predictions():
    metric = E2EMetric()
    metric([[]], [lines(BOXES[:1], TEXTS[:1])])
    assert metric.get_metric() == {"precision": 0.0, "recall": 0.0, "hmean": 0.0, "full_text_acc": 0.0}
    with pytest.raises(ValueError, match="2 boxes but 1 texts"):
        full_text(BOXES[:2], TEXTS[:1])


def test_sroie_labels_scored_against_themselves(sroie_dir):
    """Real PPOCRLabel lines: labels as predictions read perfectly, and the receipt's first line comes first."""
    import json

    image_path, lines_json = (sroie_dir / "Label.txt").read_text(encoding="utf-8").splitlines()[0].split("\t")
    gts = json.loads(lines_json)
    preds = [(g["points"], g["transcription"], 1.0) for g in reversed(gts)]
    metric = E2EMetric()
    metric([preds], [gts])
    assert metric.get_metric() == {"precision": 1.0, "recall": 1.0, "hmean": 1.0, "full_text_acc": 1.0}
    top = min(range(len(gts)), key=lambda i: min(p[1] for p in gts[i]["points"]))
    assert reading_order([g["points"] for g in gts])[0] == top
    dropped = score_end_to_end(preds[1:], gts)
    assert (dropped["matched"], dropped["gt_care"], dropped["full_text_match"]) == (len(gts) - 1, len(gts), False)
