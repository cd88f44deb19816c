"""The off-the-shelf anchors (PP-OCRv4 from rapidocr_onnxruntime, PP-OCRv6 small from rapidocr 3.x) on a
real receipt: located in the installed wheels, dictionaries from the ONNX metadata, threads honoured."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from ocrforge.offtheshelf import (
    ANCHORS,
    RapidOCREngine,
    RapidOCRv6Engine,
    build_anchor,
    dictionary_coverage,
    onnx_dictionary,
    ppocrv4_model_files,
    ppocrv6_model_files,
)

# sroie100/sroie/003.jpg, top 370 rows: lines checked by eye on the image (points from Label.txt)
RECEIPT_LINES = {
    "YONGFATT ENTERPRISE": [[88, 107], [366, 107], [366, 133], [88, 133]],
    "(JM0517726)": [[171, 137], [280, 137], [280, 155], [171, 155]],
    "81100 JOHOR BAHRU": [[136, 184], [316, 184], [316, 198], [136, 198]],
    "TEL 07-3523888": [[157, 220], [295, 220], [295, 238], [157, 238]],
    "SIMPLIFIED TAX INVOICE": [[112, 277], [349, 277], [349, 296], [112, 296]],
    "CS00031663": [[141, 337], [251, 337], [251, 358], [141, 358]],
    "25/12/2018": [[329, 341], [415, 341], [415, 358], [329, 358]],
}


@pytest.fixture(scope="module")
def receipt(sroie_dir) -> np.ndarray:
    from ocrforge.data.images import read_image

    return read_image(sroie_dir / "sroie" / "003.jpg")[:370]


@pytest.fixture(scope="module")
def v6() -> RapidOCRv6Engine:
    return RapidOCRv6Engine(threads=1)


@pytest.fixture(scope="module")
def v4() -> RapidOCREngine:
    return RapidOCREngine(threads=1)


def _crop(image, points):
    (x0, y0), (x1, y1) = np.min(points, axis=0), np.max(points, axis=0)
    return image[y0:y1, x0:x1]


def test_the_wheels_ship_the_models_and_their_dictionaries():
    v6_files, v4_files = ppocrv6_model_files(), ppocrv4_model_files()
    assert (v6_files["det"].name, v6_files["rec"].name) == ("PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx")
    assert v6_files["det"].parent.parent.name == "rapidocr"
    assert v4_files["rec"].parent.parent.name == "rapidocr_onnxruntime"
    v6_chars, v4_chars = onnx_dictionary(v6_files["rec"]), onnx_dictionary(v4_files["rec"])
    # the recognisers' outputs have a class per character plus the blank and RapidOCR's appended space
    assert (len(v6_chars), len(v4_chars)) == (18708, 6623)
    assert v6_chars[:5] == ["!", '"', "#", "$", "%"]
    assert all(len(c) == 1 for c in v6_chars)


def test_missing_dictionary_key_is_named(tmp_path):
    import onnx

    model = onnx.load(str(ppocrv6_model_files()["det"]))
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    with pytest.raises(KeyError, match="det.onnx has no metadata key 'character' \\(keys: \\[\\]\\)"):
        onnx_dictionary(path)


def test_a_missing_package_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rapidocr" else real(name, *a))
    with pytest.raises(ModuleNotFoundError) as error:
        RapidOCRv6Engine(threads=1)
    assert str(error.value) == (
        "rapidocr is not installed; pip install rapidocr==3.10.0 (its wheel ships PP-OCRv6_det_small.onnx and "
        "PP-OCRv6_rec_small.onnx; rapidocr_onnxruntime is another package)")


def test_an_older_rapidocr_without_the_files_is_named(tmp_path, monkeypatch):
    (tmp_path / "rapidocr" / "models").mkdir(parents=True)
    (tmp_path / "rapidocr" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rapidocr", raising=False)
    with pytest.raises(FileNotFoundError, match=r"PP-OCRv6_det_small.onnx, .*PP-OCRv6_rec_small.onnx not found in "
                                                r"the installed rapidocr 3.10.0; pip install rapidocr==3.10.0"):
        ppocrv6_model_files()


def test_v6_reads_the_receipt(v6, receipt):
    lines = v6.read(receipt)
    texts = [text for _, text, _ in lines]
    assert set(RECEIPT_LINES) <= set(texts)
    box = lines[texts.index("SIMPLIFIED TAX INVOICE")][0]
    assert box.shape == (4, 2) and box.dtype == np.float32
    assert np.abs(np.concatenate([box.min(0), box.max(0)]) - [112, 277, 349, 296]).max() <= 8
    assert v6.recognize([_crop(receipt, RECEIPT_LINES[t]) for t in ("CS00031663", "81100 JOHOR BAHRU")], 6)[0][0] \
        == "CS00031663"
    assert v6.recognize_one(_crop(receipt, RECEIPT_LINES["81100 JOHOR BAHRU"]))[0] == "81100 JOHOR BAHRU"
    assert len(v6.detect(receipt)) == len(lines)


def test_v4_reads_the_receipt_without_spaces(v4, receipt):
    texts = [text for _, text, _ in v4.read(receipt)]
    # PP-OCRv4's Chinese dictionary has no space: it runs words together
    assert {"YONGFATTENTERPRISE", "81100JOHORBAHRU", "SIMPLIFIEDTAXINVOICE", "CS00031663"} <= set(texts)
    assert v4.recognize_one(_crop(receipt, RECEIPT_LINES["CS00031663"]))[0] == "CS00031663"


def test_threads_are_honoured(v6, v4):
    assert {kind: s.get_session_options().intra_op_num_threads for kind, s in v6.sessions().items()} == \
        {"det": 1, "rec": 1}
    assert {kind: s.get_session_options().intra_op_num_threads for kind, s in v4.sessions().items()} == \
        {"det": 1, "rec": 1}
    two = build_anchor("ppocrv6", threads=2)
    assert [s.get_session_options().intra_op_num_threads for s in two.sessions().values()] == [2, 2]
    assert set(ANCHORS) == {"ppocrv4", "ppocrv6"}
    unknown = r"unknown off-the-shelf model 'ppocrv5'; choose from \['ppocrv4', 'ppocrv6'\]"
    with pytest.raises(ValueError, match=unknown):
        build_anchor("ppocrv5", threads=1)


def test_dictionary_coverage():
    charset = set("ABC ")
    assert dictionary_coverage(charset, ["AB C", "ABD", "ab"]) == {"chars": 6 / 9, "lines": 1 / 3, "missing": "Dab"}
    assert dictionary_coverage(charset, ["AB C", "ab"], case_sensitive=False) == {"chars": 1.0, "lines": 1.0,
                                                                                   "missing": ""}
    assert dictionary_coverage(charset, []) == {"chars": 1.0, "lines": 1.0, "missing": ""}
