"""The evaluation: metrics on a tiny split with known answers, reports written, PPOCRLabel folders read."""

import json

import cv2

import pytest

from ocrforge.data.ppocrlabel import TextLine
from ocrforge.data.det_labels import load_det_label_file, load_ppocrlabel_folder, load_testset
from ocrforge.evaluate import evaluate


def _write_split(tmp_path, image, boxes, wrong_text: str):
    """Two copies of the known image: one labelled right, one with the last line labelled ``wrong_text``."""
    (tmp_path / "det" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "det" / "images" / "right.png"), image)
    cv2.imwrite(str(tmp_path / "det" / "images" / "wrong.png"), image)
    wrong = [dict(b) for b in boxes]
    wrong[-1]["transcription"] = wrong_text
    rows = [f"det/images/right.png\t{json.dumps(boxes)}", f"det/images/wrong.png\t{json.dumps(wrong)}"]
    (tmp_path / "det" / "test.txt").write_text("\n".join(rows) + "\n")
    return load_det_label_file(tmp_path / "det" / "test.txt", tmp_path)


def test_eval_metrics_reports_and_gallery(trained_system, known_image, tmp_path):
    samples = _write_split(tmp_path / "split", *known_image, wrong_text="SN99999")
    metrics = evaluate(trained_system, samples, tmp_path / "eval", gallery_size=5)

    assert metrics["images"] == 2 and metrics["lines"] == 6
    assert metrics["det"] == {"precision": 1.0, "recall": 1.0, "hmean": 1.0,
                              "hmean_ci95_low": 1.0, "hmean_ci95_high": 1.0}
    # resampling the two images (3/3 and 2/3 lines read) gives 2/3, 5/6 or 1 as the set's e2e hmean
    assert abs(metrics["e2e"]["hmean_ci95_low"] - 2 / 3) < 1e-9 and metrics["e2e"]["hmean_ci95_high"] == 1.0
    assert metrics["rec"]["acc"] == 5 / 6
    assert abs(metrics["e2e"]["precision"] - 5 / 6) < 1e-9 and abs(metrics["e2e"]["recall"] - 5 / 6) < 1e-9
    assert metrics["e2e"]["full_text_acc"] == 0.5
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == metrics

    records = [json.loads(r) for r in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["image"] for r in records] == ["det/images/right.png", "det/images/wrong.png"]
    assert records[1]["e2e"] == {"gt_care": 3, "det_care": 3, "matched": 2, "full_text_match": False}
    assert records[1]["det"] == {"gt_care": 3, "det_care": 3, "matched": 3}
    assert records[0]["pred"]["full_text"] == "LOT4711 EXP2027\nSN12345"

    gallery = sorted(p.name for p in (tmp_path / "eval" / "gallery").iterdir())
    assert gallery == ["01_wrong.png"]  # the correct image is no error
    assert cv2.imread(str(tmp_path / "eval" / "gallery" / "01_wrong.png")).shape[1] > 2 * known_image[0].shape[1]
    assert "01_wrong.png" in (tmp_path / "eval" / "README.md").read_text()


def test_case_insensitive_eval(trained_system, known_image, tmp_path):
    samples = _write_split(tmp_path / "split", *known_image, wrong_text="sn12345")
    strict = evaluate(trained_system, samples, tmp_path / "strict")
    loose = evaluate(trained_system, samples, tmp_path / "loose", case_sensitive=False)
    assert strict["e2e"]["full_text_acc"] == 0.5 and loose["e2e"]["full_text_acc"] == 1.0


def test_reads_a_ppocrlabel_folder(sroie_dir):
    samples = load_ppocrlabel_folder(sroie_dir)
    assert len(samples) > 50
    first = samples[0]
    assert first.path.is_file() and first.lines
    assert isinstance(first.lines[0], TextLine) and first.lines[0].box.shape[1] == 2
    # load_testset takes the folder as it is, or a split folder's test split, and says what else it wants
    assert [s.name for s in load_testset(sroie_dir, limit=3)] == [s.name for s in samples[:3]]
    with pytest.raises(FileNotFoundError, match="holds neither det/test.txt .* nor Label.txt"):
        load_testset(sroie_dir / "sroie")



# sroie100/sroie/003.jpg, rows 0-300, columns 80-380: its 8 labelled lines (upper-cased by the annotators; by
# eye, the first line is printed "tan woon yann", the fourth "NO.122,124. JALAN DEDAP 13", the seventh
# "GST ID : 000849813504"), the fifth given a character PP-OCRv4's dictionary lacks (the Euro sign)
RECEIPT_TOP = [
    ("TAN WOON YANN", [[96, 41], [353, 41], [353, 79], [96, 79]]),
    ("YONGFATT ENTERPRISE", [[88, 107], [366, 107], [366, 133], [88, 133]]),
    ("(JM0517726)", [[171, 137], [280, 137], [280, 155], [171, 155]]),
    ("NO 122.124 JALAN DEDAP 13", [[104, 162], [347, 162], [347, 179], [104, 179]]),
    ("81100 JOHOR BAHRU €", [[136, 184], [316, 184], [316, 198], [136, 198]]),
    ("TEL 07-3523888", [[157, 220], [295, 220], [295, 238], [157, 238]]),
    ("GST ID: 000849813504", [[135, 252], [320, 252], [320, 269], [135, 269]]),
    ("SIMPLIFIED TAX INVOICE", [[112, 277], [349, 277], [349, 296], [112, 296]]),
]


@pytest.fixture(scope="module")
def receipt_samples(sroie_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("receipt")
    (root / "det" / "images").mkdir(parents=True)
    image = cv2.imread(str(sroie_dir / "sroie" / "003.jpg"))[:300, 80:380]
    cv2.imwrite(str(root / "det" / "images" / "receipt.png"), image)
    labels = [{"transcription": text, "points": [[x - 80, y] for x, y in points], "difficult": False}
              for text, points in RECEIPT_TOP]
    (root / "det" / "test.txt").write_text(f"det/images/receipt.png\t{json.dumps(labels, ensure_ascii=False)}\n",
                                           encoding="utf-8")
    return load_det_label_file(root / "det" / "test.txt", root)


@pytest.fixture(scope="module")
def zero_shot(receipt_samples):
    from ocrforge.evaluate import zero_shot_figures

    return zero_shot_figures(["ppocrv4", "ppocrv6"], receipt_samples, case_sensitive=False, threads=2)


def test_zero_shot_anchors_on_a_receipt(zero_shot):
    v4, v6 = zero_shot["ppocrv4"], zero_shot["ppocrv6"]
    assert (v4["model"], v4["package"], v6["model"], v6["package"]) == \
        ("PP-OCRv4", "rapidocr_onnxruntime 1.4.4", "PP-OCRv6 small", "rapidocr 3.10.0")
    # 143 label characters (spaces included), 1 of them the Euro sign: in PP-OCRv6's dictionary, not PP-OCRv4's
    assert v4["dictionary_coverage"] == {"chars": 142 / 143, "lines": 7 / 8, "missing": "€"}
    assert v6["dictionary_coverage"] == {"chars": 1.0, "lines": 1.0, "missing": ""}
    assert (v4["comparable"], v6["comparable"]) == (False, True)
    for figures in (v4, v6):  # both find the 8 lines and nothing else
        assert {k: figures["det"][k] for k in ("precision", "recall", "hmean")} == \
            {"precision": 1.0, "recall": 1.0, "hmean": 1.0}
    # PP-OCRv6 reads 5 lines as labelled: not the Euro line, and not the two printed otherwise than labelled;
    # PP-OCRv4 runs words together in the image and reads only "tan woon yann" on its ground-truth crop
    assert v6["rec"]["acc"] == 5 / 8 and v6["e2e"]["hmean"] == 5 / 8
    assert v4["rec"]["acc"] == 1 / 8 and v4["e2e"]["hmean"] == 0.0
    assert v6["e2e"]["full_text_acc"] == v4["e2e"]["full_text_acc"] == 0.0


def test_an_unknown_anchor_is_named(receipt_samples):
    from ocrforge.evaluate import zero_shot_figures

    unknown = r"unknown off-the-shelf model 'ppocrv5'; choose from \['ppocrv4', 'ppocrv6'\]"
    with pytest.raises(ValueError, match=unknown):
        zero_shot_figures(["ppocrv5"], receipt_samples)


@pytest.mark.slow
def test_eval_writes_the_zero_shot_section(trained_system, receipt_samples, zero_shot, tmp_path):
    metrics = evaluate(trained_system, receipt_samples, tmp_path / "eval", case_sensitive=False,
                       zero_shot=["ppocrv4", "ppocrv6"], threads=2)
    assert metrics["zero_shot"] == zero_shot
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text(encoding="utf-8")) == metrics
    readme = (tmp_path / "eval" / "README.md").read_text(encoding="utf-8")
    assert "| ppocrv6: PP-OCRv6 small off the shelf (rapidocr 3.10.0) | 1.0000 | 0.6250 | 0.6250 | 0.6250 | " \
           "0.0000 | 0.6250 | 100.0% of lines, 100.0% of characters in its dictionary |" in readme
    assert "**not comparable**: 87.5% of lines, 99.3% of characters in its dictionary; missing '€'" in readme
    assert "zero_shot" not in evaluate(trained_system, receipt_samples, tmp_path / "plain")
