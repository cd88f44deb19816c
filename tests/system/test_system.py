"""The end-to-end system on the trained (dygraph) models: JSON schema, reading order, pre/post-processing."""

import numpy as np
import pytest

from ocrforge.system import SystemSettings, clean_boxes, resize_norm_rec
from system_known import KNOWN_FULL_TEXT, KNOWN_WORDS


def test_known_image_reads_in_reading_order(trained_system, known_image):
    image, _ = known_image
    result = trained_system(image).to_json()
    assert set(result) == {"success", "full_text", "lines"}
    assert result["success"] is True
    assert [line["text"] for line in result["lines"]] == [w for w, _ in KNOWN_WORDS]
    assert result["full_text"] == KNOWN_FULL_TEXT
    for line, (_, (x, y)) in zip(result["lines"], KNOWN_WORDS):
        assert set(line) == {"box", "text", "score"}
        assert np.asarray(line["box"]).shape == (4, 2)
        assert all(isinstance(v, int) for point in line["box"] for v in point)
        x0, y0 = np.asarray(line["box"]).min(axis=0)
        assert abs(x0 - x) < 10 and abs(y0 - y) < 12  # the box sits on its word
        assert 0.9 < line["score"] <= 1.0


def test_drop_score_removes_every_line(trained_models, known_image):
    from ocrforge.system import load_trained_system

    strict = load_trained_system(trained_models / "det", trained_models / "rec", drop_score=1.01)
    result = strict(known_image[0])
    assert result.lines == [] and result.full_text == ""


def test_blank_image_has_no_lines(trained_system):
    result = trained_system(np.full((64, 96, 3), 255, np.uint8)).to_json()
    assert result == {"success": True, "full_text": "", "lines": []}


def test_rejects_an_array_that_is_not_an_image(trained_system):
    with pytest.raises(ValueError, match="HWC uint8 BGR"):
        trained_system(np.zeros((32, 32), np.uint8))


def test_resize_norm_rec_pads_to_the_batch_ratio():
    crop = np.full((24, 48, 3), 255, np.uint8)  # ratio 2 -> 96 px wide at height 48
    out = resize_norm_rec(crop, (3, 48, 320), max_wh_ratio=10.0)
    assert out.shape == (3, 48, 480)
    assert np.allclose(out[:, :, :96], 1.0) and np.all(out[:, :, 96:] == 0.0)
    long = resize_norm_rec(np.zeros((10, 1000, 3), np.uint8), (3, 48, 320), max_wh_ratio=320 / 48)
    assert long.shape == (3, 48, 320) and np.allclose(long, -1.0)


def test_clean_boxes_orders_clips_and_drops_slivers():
    boxes = np.array([
        [[110, 40], [10, 10], [110, 10], [10, 40]],   # scrambled corners, right edge outside
        [[-5, 50], [200, 50], [200, 80], [-5, 80]],    # left edge outside a 100-px-wide image
        [[10, 90], [12, 90], [12, 95], [10, 95]],      # 2 px wide: dropped
    ], dtype=np.float32)
    kept = clean_boxes(boxes, (100, 100, 3))
    assert len(kept) == 2
    assert kept[0].tolist() == [[10, 10], [99, 10], [99, 40], [10, 40]]
    assert kept[1][:, 0].min() == 0 and kept[1][:, 0].max() == 99


def test_settings_override_rejects_unknown_names():
    settings = SystemSettings()
    assert settings.with_overrides(drop_score=0.7, det_db_thresh=None).drop_score == 0.7
    with pytest.raises(TypeError, match="unknown system settings"):
        settings.with_overrides(det_thresh=0.2)


def test_detected_boxes_are_cut_and_ordered_as_paddleocr_does():
    """A box turned 45 degrees is cut from the detector's first point (label crops re-order theirs), and boxes
    are recognised in PaddleOCR's order, so equal-ratio crops are batched alike."""
    import paddleocr  # noqa: F401
    from paddleocr.tools.infer.predict_system import sorted_boxes
    from paddleocr.tools.infer.utility import get_rotate_crop_image

    from ocrforge.system import crop_detected_box, crop_order

    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    diamond = np.array([[40, 10], [29, 21], [51, 22], [40, 33]], dtype=np.float32)  # a degenerate detector quad
    upright = np.array([[5, 50], [90, 50], [90, 70], [5, 70]], dtype=np.float32)
    for box in (diamond, upright):
        assert np.array_equal(crop_detected_box(image, box), get_rotate_crop_image(image, box.copy()))
    boxes = [upright + [0, 30], upright, upright + [60, 4], diamond]
    expected = sorted_boxes(np.array(boxes))
    assert all(np.array_equal(boxes[i], e) for i, e in zip(crop_order(boxes), expected))


def test_the_detector_input_is_normalised_as_its_config_says():
    """The normalisation comes from the detector config's Eval NormalizeImage (ImageNet's statistics when it
    has none), computed as PaddleOCR's own transform computes it during training."""
    import paddleocr  # noqa: F401
    from ppocr.data.imaug.operators import NormalizeImage

    from ocrforge.resources import resolve_dict_path
    from ocrforge.system import TextSystem, settings_from_configs

    rec = {"Global": {"character_dict_path": resolve_dict_path("ppocr/utils/en_dict.txt")}}
    assert settings_from_configs({}, rec).det_norm_mean == (0.485, 0.456, 0.406)
    own = {"scale": "1./255.", "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.5], "order": "hwc"}
    det = {"Eval": {"dataset": {"transforms": [{"DecodeImage": None}, {"NormalizeImage": own}]}}}
    settings = settings_from_configs(det, rec)
    assert (settings.det_norm_mean, settings.det_norm_std) == ((0.5, 0.4, 0.3), (0.25, 0.2, 0.5))
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    batch, _ = TextSystem(None, None, settings).detect_input(image)
    assert np.array_equal(batch[0].transpose(1, 2, 0), NormalizeImage(**own)({"image": image})["image"])
