"""Transform lists: the wheel's ops and registered ones by name, clear errors, and NativeScaleCrop's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from ocrforge.data.transforms import NativeScaleCrop, build_transforms, resolve_transform
from ocrforge.registry import TRANSFORMS


@pytest.fixture
def registered_op():
    """A transform a plugin would add, registered for one test."""

    class AddMarker:
        def __init__(self, value=1, **kwargs):
            self.value = value

        def __call__(self, data):
            data["marker"] = self.value
            return data

    TRANSFORMS.register()(AddMarker)
    yield AddMarker
    TRANSFORMS._items.pop("AddMarker")


def coordinate_image(height: int, width: int) -> np.ndarray:
    """HWC uint8 whose pixel at (y, x) encodes x and y (each below 2008), so a crop's offset can be read back."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 251, ys % 251, (xs // 251) * 8 + ys // 251], axis=-1).astype(np.uint8)


def box(x1, y1, x2, y2):
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def sample(image, boxes, ignore=None):
    return {
        "image": image,
        "polys": np.array(boxes, dtype=np.float32),
        "ignore_tags": list(ignore or [False] * len(boxes)),
        "texts": [f"t{i}" for i in range(len(boxes))],
    }


def offset_of(crop: np.ndarray) -> tuple[int, int]:
    x0 = int(crop[0, 0, 0]) + 251 * (int(crop[0, 0, 2]) // 8)
    y0 = int(crop[0, 0, 1]) + 251 * (int(crop[0, 0, 2]) % 8)
    return x0, y0


def test_wheel_and_registered_ops_build_by_name(registered_op):
    ops = build_transforms([{"DetLabelEncode": None}, {"AddMarker": {"value": 7}}, {"NativeScaleCrop": {"size": [64, 64]}}])
    assert [type(op).__name__ for op in ops] == ["DetLabelEncode", "AddMarker", "NativeScaleCrop"]
    assert ops[1]({})["marker"] == 7
    assert resolve_transform("NativeScaleCrop") is NativeScaleCrop


def test_unknown_transform_is_named_with_the_known_ones():
    with pytest.raises(KeyError) as err:
        build_transforms([{"DecodeImage": None}, {"EastRandomCrop": {"size": [640, 640]}}])
    message = str(err.value)
    assert "unknown transform 'EastRandomCrop'" in message
    assert "EastRandomCropData" in message and "NativeScaleCrop" in message


def test_a_registered_op_may_not_shadow_the_wheels():
    class NormalizeImage:
        def __call__(self, data):
            return data

    TRANSFORMS.register()(NormalizeImage)
    try:
        with pytest.raises(KeyError, match="'NormalizeImage' is defined both by paddleocr and by"):
            build_transforms([{"NormalizeImage": None}])
    finally:
        TRANSFORMS._items.pop("NormalizeImage")


def test_bad_entries_and_arguments_say_which_position(registered_op):
    class Strict:
        def __init__(self, size):
            self.size = size

    TRANSFORMS.register()(Strict)
    try:
        with pytest.raises(TypeError, match=r"transforms\[1\] Strict with arguments \['colour', 'size'\]"):
            build_transforms([{"AddMarker": None}, {"Strict": {"size": 1, "colour": "red"}}])
    finally:
        TRANSFORMS._items.pop("Strict")
    with pytest.raises(ValueError, match=r"transforms\[1\] must be a single"):
        build_transforms([{"DecodeImage": None}, {"DetLabelEncode": None, "ToCHWImage": None}])
    with pytest.raises(ValueError, match="size must be"):
        NativeScaleCrop(size=[640])


def test_native_crop_keeps_scale_and_puts_edges_between_lines():
    image = coordinate_image(1000, 900)
    # text lines 30 px high every 50 px: the only rows free of text are the 20-px gaps between them
    lines = [box(20, y, 880, y + 30) for y in range(10, 1000 - 30, 50)]
    op = NativeScaleCrop(size=[640, 640])
    for seed in range(20):
        np.random.seed(seed)
        out = op(sample(image.copy(), lines))
        assert out["image"].shape == (640, 640, 3)
        x0, y0 = offset_of(out["image"])
        np.testing.assert_array_equal(out["image"], image[y0 : y0 + 640, x0 : x0 + 640])  # same scale, no resize
        # both horizontal edges fall in the gaps between lines (first row, last row)
        in_text = lambda y: any(y1 <= y < y2 for y1, y2 in ((p[0][1], p[2][1]) for p in lines))
        assert not in_text(y0) and not in_text(y0 + 639)
        # no column is free of text, so x is random and the cut lines are clipped and ignored
        cut = [bool(x0 > 20 or x0 + 640 < 880)] * len(out["polys"])
        assert out["ignore_tags"] == cut
        expected = [np.clip(np.array(p, np.float32) - (x0, y0), 0, 640) for p in lines
                    if y0 <= p[0][1] and p[2][1] <= y0 + 640]
        np.testing.assert_allclose(out["polys"], np.array(expected))


def test_native_crop_pads_a_small_image_and_keeps_its_boxes():
    image = coordinate_image(300, 200)
    boxes = [box(10, 10, 190, 40), box(10, 100, 120, 130)]
    out = NativeScaleCrop(size=[320, 320])(sample(image, boxes, ignore=[False, True]))
    assert out["image"].shape == (320, 320, 3)
    np.testing.assert_array_equal(out["image"][:300, :200], image)
    assert not out["image"][300:].any() and not out["image"][:, 200:].any()
    np.testing.assert_allclose(out["polys"], np.array(boxes, np.float32))
    assert out["ignore_tags"] == [False, True] and out["texts"] == ["t0", "t1"]


def test_native_crop_without_text_feeds_the_db_label_makers():
    image = coordinate_image(2000, 400)
    label_makers = build_transforms([{"MakeBorderMap": None}, {"MakeShrinkMap": None}])
    empty = 0
    for seed in range(5):
        np.random.seed(seed)
        out = NativeScaleCrop(size=[400, 400])(sample(image.copy(), [box(10, 10, 390, 40)]))
        if offset_of(out["image"])[1] > 40:
            empty += 1
            assert out["polys"].shape == (0, 4, 2) and out["ignore_tags"] == [] and out["texts"] == []
            for op in label_makers:
                out = op(out)
            assert out["shrink_map"].shape == (400, 400) and not out["shrink_map"].any()
            assert out["shrink_mask"].all()
    assert empty


def test_native_crop_with_text_prob_holds_a_small_box_of_a_large_photo():
    image = coordinate_image(960, 1280)
    plate = box(900, 700, 1050, 740)  # 150 x 40 px in a 1280 x 960 photo, as a licence plate
    held = {0.0: 0, 1.0: 0}
    for text_prob in held:
        op = NativeScaleCrop(size=[320, 320], text_prob=text_prob)
        for seed in range(40):
            np.random.seed(seed)
            out = op(sample(image.copy(), [plate]))
            x0, y0 = offset_of(out["image"])
            np.testing.assert_array_equal(out["image"], image[y0 : y0 + 320, x0 : x0 + 320])  # still native scale
            if len(out["polys"]) and out["ignore_tags"] == [False]:
                held[text_prob] += 1
                np.testing.assert_allclose(out["polys"][0], np.array(plate, np.float32) - (x0, y0))
    assert held[1.0] == 40  # every window holds the whole plate
    assert held[0.0] < 10  # placed anywhere, most windows are background


def test_native_crop_text_prob_must_be_a_share():
    with pytest.raises(ValueError, match="text_prob must be in"):
        NativeScaleCrop(size=[64, 64], text_prob=1.5)


def test_a_plugin_package_adds_a_transform_through_entry_points(install_plugin):
    install_plugin("acme_transforms", """
        from ocrforge.registry import TRANSFORMS

        @TRANSFORMS.register()
        class AcmeInvert:
            def __init__(self, **kwargs):
                pass

            def __call__(self, data):
                data["image"] = 255 - data["image"]
                return data
    """)
    try:
        (invert,) = build_transforms([{"AcmeInvert": None}])
        assert invert({"image": np.full((2, 2), 5, np.uint8)})["image"].tolist() == [[250, 250], [250, 250]]
    finally:
        TRANSFORMS._items.pop("AcmeInvert", None)


def _context_sample(thickness=20, length=90):
    """A context crop (CONTEXT_MARGIN) of a line whose pixels are their own column and row numbers."""
    from ocrforge.data.crop import CONTEXT_MARGIN

    pad = int(round(CONTEXT_MARGIN * thickness))
    rows, cols = np.mgrid[0 : thickness + 2 * pad, 0 : length + 2 * pad]
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    return image, pad


def test_box_jitter_cuts_the_labelled_box_or_one_moved_by_at_most_jitter():
    from ocrforge.data.transforms import RecBoxJitter

    image, pad = _context_sample()
    exact = image[pad:-pad, pad:-pad]
    assert np.array_equal(RecBoxJitter(prob=0.0)({"image": image.copy()})["image"], exact)
    np.random.seed(0)
    op = RecBoxJitter(prob=1.0, jitter=0.25)
    moved = 0
    for _ in range(50):
        out = op({"image": image.copy()})["image"]
        top, left = int(out[0, 0, 0]), int(out[0, 0, 1])
        bottom, right = int(out[-1, 0, 0]) + 1, int(out[0, -1, 1]) + 1
        assert out.shape[:2] == (bottom - top, right - left)
        for edge, labelled in ((top, pad), (left, pad), (bottom, image.shape[0] - pad), (right, image.shape[1] - pad)):
            assert abs(edge - labelled) <= 5  # 0.25 x a thickness of 20
        moved += (top, left, bottom, right) != (pad, pad, image.shape[0] - pad, image.shape[1] - pad)
    assert moved >= 40


def test_box_jitter_cannot_move_a_box_further_out_than_the_context():
    from ocrforge.data.transforms import RecBoxJitter

    with pytest.raises(ValueError, match="further out than the context"):
        RecBoxJitter(jitter=0.3)
    with pytest.raises(ValueError, match="not a context crop"):
        RecBoxJitter()({"image": np.zeros((8, 40, 3), np.uint8)})
