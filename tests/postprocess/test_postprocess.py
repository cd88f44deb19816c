import ocrforge  # noqa: F401  (sets the thread count before paddle loads)

import numpy as np
import paddle
import pytest

from ocrforge.registry import POSTPROCESS

DIGITS_AND_LETTERS = "0123456789abcdefghijklmnopqrstuvwxyz"  # the wheel's dictionary when none is given


def two_rectangle_map():
    """(1, 1, 64, 96) shrink probability: 0.9 inside two rectangles, 0.05 elsewhere."""
    prob = np.full((1, 1, 64, 96), 0.05, np.float32)
    prob[0, 0, 10:20, 10:50] = 0.9  # rows 10-19, columns 10-49
    prob[0, 0, 40:52, 60:90] = 0.9
    return prob


def box_centres(points):
    return sorted((float(c[0]), float(c[1])) for c in np.asarray(points, np.float64).mean(axis=1))


def test_db_postprocess_finds_two_rectangles_in_source_pixels():
    post = POSTPROCESS.build({"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5})
    out = post({"maps": paddle.to_tensor(two_rectangle_map())}, paddle.to_tensor([[64.0, 96.0, 1.0, 1.0]]))
    assert len(out) == 1 and np.asarray(out[0]["points"]).shape == (2, 4, 2)
    for (cx, cy), (ex, ey) in zip(box_centres(out[0]["points"]), [(29.5, 14.5), (74.5, 45.5)]):
        assert abs(cx - ex) <= 1.5 and abs(cy - ey) <= 1.5
    for box, (x0, y0, x1, y1) in zip(sorted(out[0]["points"], key=lambda b: b[:, 0].min()), [(10, 10, 49, 19), (60, 40, 89, 51)]):
        assert box[:, 0].min() <= x0 and box[:, 0].max() >= x1 and box[:, 1].min() <= y0 and box[:, 1].max() >= y1

    # the same map for an image twice as large: boxes come back in that image's pixels
    doubled = post(paddle.to_tensor(two_rectangle_map()), np.array([[128.0, 192.0, 0.5, 0.5]]))
    for (cx, cy), (ex, ey) in zip(box_centres(doubled[0]["points"]), [(59, 29), (149, 91)]):
        assert abs(cx - ex) <= 3 and abs(cy - ey) <= 3


def test_db_postprocess_on_an_empty_map_returns_no_boxes():
    post = POSTPROCESS.build({"name": "DBPostProcess"})
    out = post({"maps": np.zeros((1, 1, 32, 32), np.float32)}, [[32, 32, 1.0, 1.0]])
    assert len(out[0]["points"]) == 0


def one_hot_logits(ids, num_classes):
    logits = np.full((1, len(ids), num_classes), -5.0, np.float32)
    logits[0, np.arange(len(ids)), ids] = 5.0
    return logits


def ctc_ids(text):
    return [DIGITS_AND_LETTERS.index(c) + 1 for c in text]


def test_ctc_label_decode_merges_repeats_and_drops_blanks():
    post = POSTPROCESS.build({"name": "CTCLabelDecode"})
    h, e, l, o = ctc_ids("helo")
    ids = [0, h, h, e, l, 0, l, o, o, 0]
    logits = paddle.to_tensor(one_hot_logits(ids, 37))
    assert post(logits)[0][0] == "hello"
    probs = paddle.nn.functional.softmax(logits, axis=-1)  # what the eval-mode head returns
    (text, score), = post(probs)
    assert text == "hello"
    assert score == pytest.approx(float(probs[0, 1].max()), rel=1e-5)  # mean of the kept steps' maxima
    assert post({"ctc": logits, "nrtr": None})[0][0] == "hello"
    label = paddle.to_tensor([ctc_ids("hello") + [0, 0, 0]])
    texts, labels = post(logits, label)
    assert texts[0][0] == "hello" and labels == [("hello", 1.0)]


def test_ctc_label_decode_with_a_dictionary_file(tmp_path):
    dict_path = tmp_path / "dict.txt"
    dict_path.write_text("A\nB\nÉ\n", encoding="utf-8")
    post = POSTPROCESS.build({"name": "CTCLabelDecode", "character_dict_path": str(dict_path), "use_space_char": True})
    # ids: 0 blank, 1 A, 2 B, 3 É, 4 space
    assert post(one_hot_logits([1, 4, 3, 0, 3, 2], 5))[0][0] == "A ÉÉB"


def test_nrtr_label_decode_stops_at_end_token_for_any_batch_size():
    post = POSTPROCESS.build({"name": "NRTRLabelDecode"})
    a, b = DIGITS_AND_LETTERS.index("a") + 4, DIGITS_AND_LETTERS.index("b") + 4
    logits = np.concatenate([one_hot_logits([a, b, 3, a], 41), one_hot_logits([b, 3, 0, 0], 41)])
    texts = post({"nrtr": paddle.to_tensor(logits)})
    assert [t for t, _ in texts] == ["ab", "b"]
