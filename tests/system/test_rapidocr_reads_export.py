"""RapidOCR 3.x (``rapidocr``, onnxruntime) loads the export's ONNX models and dictionary as they are and, with
the export's pre- and post-processing settings, reads what ``OCR(export, backend="onnx")`` reads: the same texts,
boxes within 1 px. It stands for any program outside Python and Paddle that calls the ONNX files."""

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the export fixture takes about 40 s on 2 cores


def rapidocr_on_export(export_dir):
    """RapidOCR configured from the export's manifest: our ONNX files, the dictionary from rec.onnx's metadata."""
    import onnx
    from rapidocr import RapidOCR

    manifest = json.loads((export_dir / "manifest.json").read_text())
    settings = manifest["settings"]
    det_meta = {p.key: p.value for p in onnx.load(str(export_dir / manifest["onnx"]["det"])).metadata_props}
    preprocess = json.loads(det_meta["ocrforge_preprocess"])
    return RapidOCR(params={
        "Global.use_cls": False, "Global.log_level": "warning", "Global.text_score": settings["drop_score"],
        "Global.use_preprocess_img": False,
        "Det.model_path": str(export_dir / manifest["onnx"]["det"]),
        "Det.limit_side_len": preprocess["resize"]["limit_side_len"],
        "Det.limit_type": preprocess["resize"]["limit_type"],
        "Det.mean": preprocess["normalize"]["mean"], "Det.std": preprocess["normalize"]["std"],
        "Det.thresh": settings["det_db_thresh"], "Det.box_thresh": settings["det_db_box_thresh"],
        "Det.unclip_ratio": settings["det_db_unclip_ratio"], "Det.use_dilation": settings["use_dilation"],
        "Det.score_mode": settings["det_db_score_mode"],
        "Rec.model_path": str(export_dir / manifest["onnx"]["rec"]),
        "Rec.rec_img_shape": settings["rec_image_shape"], "Rec.rec_batch_num": settings["rec_batch_num"],
        "EngineConfig.onnxruntime.intra_op_num_threads": 1, "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def test_rapidocr_reads_our_onnx_export_as_we_do(exported_dir, known_image, demo_images):
    from ocrforge import OCR

    theirs_engine = rapidocr_on_export(exported_dir)
    ours_engine = OCR(exported_dir, backend="onnx", threads=1)
    lines = 0
    for image in [known_image[0], *demo_images]:
        ours = ours_engine.read(image).lines
        out = theirs_engine(image, use_det=True, use_cls=False, use_rec=True)
        theirs = [] if out.txts is None else list(zip(out.boxes, out.txts))
        assert sorted(text for _, text in theirs) == sorted(line.text for line in ours)
        their_boxes = sorted(np.asarray(box, np.float32).reshape(-1).tolist() for box, _ in theirs)
        our_boxes = sorted(line.box.reshape(-1).tolist() for line in ours)
        assert len(their_boxes) == len(our_boxes)
        for a, b in zip(their_boxes, our_boxes):
            assert np.abs(np.subtract(a, b)).max() <= 1.0, (a, b)
        lines += len(ours)
    assert lines >= 5
