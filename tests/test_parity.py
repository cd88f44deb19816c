"""One comparison of two pipelines' reads (ocrforge/parity.py), used by the export's checks and the benchmark."""

import numpy as np

from ocrforge.parity import compare_reads

TOP = np.array([[10, 10], [90, 10], [90, 30], [10, 30]], dtype=np.float32)
BOTTOM = TOP + [0, 40]


def test_lines_pair_in_reading_order_whatever_order_a_pipeline_lists_them():
    image = np.zeros((80, 100, 3), np.uint8)
    ours = lambda _: [(TOP, "LOT 12", 0.95), (BOTTOM, "EXP 2027", 0.90)]  # noqa: E731
    theirs = lambda _: [(BOTTOM + 0.5, "EXP 2027", 0.90), (TOP, "LOT 12", 0.9504)]  # noqa: E731
    report = compare_reads(ours, theirs, [image], ["a"])
    assert report["identical"] == 1 and report["same"] and report["lines"] == 2
    assert report["max_box_diff_px"] == 0.5 and round(report["max_score_diff"], 4) == 0.0004
    # a score tolerance, where one is given, is part of "identical"; a box beyond the box tolerance too
    assert not compare_reads(ours, theirs, [image], ["a"], score_tolerance=1e-4)["same"]
    assert not compare_reads(ours, theirs, [image], ["a"], box_tolerance_px=0.25)["same"]


def test_a_different_text_or_line_count_is_named():
    image = np.zeros((80, 100, 3), np.uint8)
    ours = lambda _: [(TOP, "LOT 12", 0.95), (BOTTOM, "EXP 2027", 0.90)]  # noqa: E731
    misread = lambda _: [(TOP, "LOT 1Z", 0.95), (BOTTOM, "EXP 2027", 0.90)]  # noqa: E731
    missing = lambda _: [(TOP, "LOT 12", 0.95)]  # noqa: E731
    report = compare_reads(ours, misread, [image], ["a"], labels=("trained", "exported"))
    assert report["text_mismatches"] == [{"image": "a", "trained": "LOT 12", "exported": "LOT 1Z"}]
    assert report["mismatches"] == [{"image": "a", "trained": ["EXP 2027", "LOT 12"], "exported": ["EXP 2027", "LOT 1Z"]}]
    counted = compare_reads(ours, missing, [image, image])
    assert counted["identical"] == 0 and counted["line_count_mismatches"][0] == {"image": "image 0", "reference": 2,
                                                                                 "candidate": 1}
