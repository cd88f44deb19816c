"""Dictionaries in PaddleOCR's class order, and moving the shipped CTC head onto another dictionary."""

from __future__ import annotations

import numpy as np
import pytest

from ocrforge.models.dictionary import (
    SHIPPED_REC_USE_SPACE,
    class_index,
    ctc_classes,
    load_dictionary,
    rec_out_channels,
    remap_ctc_rows,
)
from ocrforge.models.pretrained import SHIPPED_KEYS

EN_DICT = "ppocr/utils/en_dict.txt"


def test_en_dict_reads_as_paddleocr_does():
    chars = load_dictionary(EN_DICT, use_space_char=True)
    # 95 lines (digits, letters, symbols, the last line a space) + the added space
    assert len(chars) == 96
    assert chars[:3] == ["0", "1", "2"]
    assert chars[-2:] == [" ", " "]
    assert rec_out_channels(chars) == {"CTCLabelDecode": 97, "NRTRLabelDecode": 100}
    assert ctc_classes(chars)[:2] == ["blank", "0"]
    # a repeated character encodes to its last class, as PaddleOCR's label encoder does
    assert class_index(chars)[" "] == 96


def test_dictionary_class_order_matches_paddleocr_decoder():
    import paddleocr  # noqa: F401 - puts ppocr on sys.path
    from ppocr.postprocess.rec_postprocess import CTCLabelDecode

    from ocrforge.resources import resolve_dict_path

    chars = load_dictionary(EN_DICT, use_space_char=True)
    decoder = CTCLabelDecode(str(resolve_dict_path(EN_DICT)), use_space_char=True)
    assert decoder.character == ctc_classes(chars)


def test_shipped_dictionary_has_6625_classes():
    chars = load_dictionary(SHIPPED_KEYS, SHIPPED_REC_USE_SPACE)
    assert len(ctc_classes(chars)) == 6625
    assert chars[-1] == " "


def test_missing_dictionary_says_where_it_looked():
    with pytest.raises(FileNotFoundError, match="no_such_dict.txt"):
        load_dictionary("no_such_dict.txt", use_space_char=False)


def test_remap_takes_matching_columns():
    old = ["a", "b", "c", " "]
    new = ["c", "a", "z", " ", " "]
    c_in = 4
    weight = np.arange(c_in * 5, dtype=np.float32).reshape(c_in, 5)  # class k is column k
    bias = np.array([10.0, 11.0, 12.0, 13.0, 14.0], dtype=np.float32)
    rows = remap_ctc_rows(weight, bias, old, new, seed=3)
    assert rows.weight.shape == (c_in, 6) and rows.bias.shape == (6,)
    np.testing.assert_array_equal(rows.weight[:, 0], weight[:, 0])  # blank from blank
    np.testing.assert_array_equal(rows.weight[:, 1], weight[:, 3])  # "c"
    np.testing.assert_array_equal(rows.weight[:, 2], weight[:, 1])  # "a"
    np.testing.assert_array_equal(rows.weight[:, 4], weight[:, 4])  # both spaces from the old space
    np.testing.assert_array_equal(rows.weight[:, 5], weight[:, 4])
    assert rows.bias.tolist()[:3] == [10.0, 13.0, 11.0]
    # the first space is never a target (the encoder uses the last); it must never tie with the second
    assert rows.bias[5] == 14.0 and rows.bias[4] == pytest.approx(14.0 - 5.0)
    assert rows.missing == ["z"]
    # the unknown character: small random weights, the mean old character bias
    assert np.abs(rows.weight[:, 3]).max() < 0.1 and np.abs(rows.weight[:, 3]).max() > 0
    assert rows.bias[3] == pytest.approx(bias[1:].mean())


def test_remap_of_the_shipped_head_onto_en_dict_misses_nothing():
    from ocrforge.models.pretrained import SHIPPED_REC_DIR, read_inference_params

    params = read_inference_params(SHIPPED_REC_DIR)
    weight, bias = params["head.ctc_head.fc.weight"], params["head.ctc_head.fc.bias"]
    old = load_dictionary(SHIPPED_KEYS, True)
    new = load_dictionary(EN_DICT, True)
    rows = remap_ctc_rows(weight, bias, old, new)
    assert rows.missing == []
    assert rows.weight.shape == (120, 97)
    a_old, a_new = old.index("A") + 1, new.index("A") + 1
    np.testing.assert_array_equal(rows.weight[:, a_new], weight[:, a_old])
    assert rows.bias[a_new] == bias[a_old]


def test_remap_rejects_a_head_of_another_dictionary():
    weight = np.zeros((8, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"3 characters \+ blank = 4 classes"):
        remap_ctc_rows(weight, np.zeros(5, np.float32), ["a", "b", "c"], ["a"])
