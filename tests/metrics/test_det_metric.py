import numpy as np
import pytest

from ocrforge.metrics import DetMetric, score_detections
from ocrforge.registry import METRICS


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_perfect_detections():
    gts = np.stack([rect(0, 0, 10, 10), rect(20, 0, 40, 10)])
    result = score_detections(gts[::-1], gts, [False, False])
    assert (result["gt_care"], result["det_care"], result["matched"]) == (2, 2, 2)
    assert sorted(result["pairs"]) == [(0, 1), (1, 0)]


@pytest.mark.parametrize("shift, matched", [(3.2, 1), (3.5, 0)])
def test_iou_just_above_half_matches_and_just_below_misses(shift, matched):
    # IoU of a 10x10 square shifted by d: (100 - 10d) / (100 + 10d): 0.515 at 3.2, 0.481 at 3.5
    result = score_detections([rect(shift, 0, 10 + shift, 10)], [rect(0, 0, 10, 10)], [False])
    assert result["matched"] == matched


def test_one_ground_truth_split_in_two_gives_one_match_and_one_false_positive():
    metric = DetMetric()
    batch = [None, None, np.stack([rect(0, 0, 20, 10)])[None], np.array([[False]])]
    metric([{"points": np.stack([rect(0, 0, 12, 10), rect(12, 0, 20, 10)])}], batch)
    assert metric.get_metric() == {"precision": 0.5, "recall": 1.0, "hmean": pytest.approx(2 / 3)}


def test_predictions_inside_ignored_text_are_not_counted():
    gts = np.stack([rect(0, 0, 10, 10), rect(30, 30, 50, 50)])
    inside = rect(32, 32, 48, 48)
    result = score_detections([rect(0, 0, 10, 10), inside], gts, [False, True])
    assert (result["gt_care"], result["det_care"], result["matched"]) == (1, 1, 1)
    half_out = rect(40, 30, 60, 50)  # half of it inside the ignored region: still counted
    result = score_detections([rect(0, 0, 10, 10), half_out], gts, [False, True])
    assert (result["gt_care"], result["det_care"], result["matched"]) == (1, 2, 1)


def test_empty_predictions_and_padded_batches():
    metric = METRICS.build({"name": "DetMetric"})
    assert metric.main_indicator == "hmean"
    polys = np.zeros((2, 2, 4, 2), np.float32)  # image 0: one box + one padding row; image 1: one box
    polys[0, 0], polys[1, 0], polys[1, 1] = rect(0, 0, 10, 10), rect(0, 0, 10, 10), rect(20, 0, 30, 10)
    batch = [None, None, polys, np.array([[False, False], [False, False]])]
    metric([{"points": np.zeros((0, 4, 2))}, {"points": np.stack([rect(0, 0, 10, 10)])}], batch)
    assert metric.get_metric() == {"precision": 1.0, "recall": pytest.approx(1 / 3), "hmean": pytest.approx(0.5)}
    metric([{"points": []}], [None, None, polys[:1], np.array([[False, False]])])
    assert metric.get_metric() == {"precision": 0.0, "recall": 0.0, "hmean": 0.0}


def test_batch_errors_are_reported():
    with pytest.raises(ValueError, match="KeepKeys"):
        DetMetric()([{"points": []}], [None, None])
    with pytest.raises(ValueError, match="1 ground-truth polygons but 2 ignore tags"):
        score_detections([], [rect(0, 0, 1, 1)], [False, True])


def test_counts_from_two_shards_merge_into_the_whole_set_figures():
    """The trainer sums ``accumulated()`` over data-parallel ranks and hands it back."""
    gts = np.stack([rect(0, 0, 10, 10), rect(20, 0, 30, 10)])[None]
    batch = [None, None, gts, np.array([[False, False]])]
    shard_a, shard_b, merged = DetMetric(), DetMetric(), DetMetric()
    shard_a([{"points": np.stack([rect(0, 0, 10, 10)])}], batch)
    shard_b([{"points": np.stack([rect(0, 0, 10, 10), rect(50, 0, 60, 10)])}], batch)
    a, b = shard_a.accumulated(), shard_b.accumulated()
    merged.set_accumulated({k: a[k] + b[k] for k in a})
    # 2 matches, 3 predictions, 4 ground truths
    assert merged.get_metric() == {"precision": pytest.approx(2 / 3), "recall": 0.5, "hmean": pytest.approx(4 / 7)}
