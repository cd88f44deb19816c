"""Crops of known synthetic quadrilaterals have the expected size and content."""

import cv2
import numpy as np
import pytest

from ocrforge.data.crop import CONTEXT_MARGIN, context_pad, crop_text_line, order_quad


def pattern(width=120, height=32) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 4, width // 4, 3)).astype(np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def place(src: np.ndarray, angle_deg: float, centre=(150, 120), canvas=(300, 240)):
    """Rotate ``src`` into a grey canvas; return the canvas and the quad of src's corners there."""
    h, w = src.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    quad = (corners - [w / 2, h / 2]) @ rot.T + centre
    matrix = cv2.getPerspectiveTransform(corners, quad.astype(np.float32))
    out = cv2.warpPerspective(src, matrix, canvas, flags=cv2.INTER_CUBIC, borderValue=(128, 128, 128))
    return out, quad


def test_crop_of_rotated_quad_recovers_the_source():
    src = pattern()
    image, quad = place(src, 12.0)
    crop = crop_text_line(image, quad)
    # Sides are truncated, as PaddleOCR does: 119.99... px gives 119.
    q = quad.astype(np.float32)
    expected = (int(max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))),
                int(max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2]))))
    assert crop.shape[:2] == expected and abs(expected[0] - 32) <= 1 and abs(expected[1] - 120) <= 1
    reference = cv2.resize(src, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA)
    inner = (slice(3, -3), slice(3, -3))
    assert np.abs(crop[inner].astype(int) - reference[inner].astype(int)).mean() < 12


def test_same_pixels_as_paddleocrs_crop():
    """Our crop equals PaddleOCR's own get_rotate_crop_image, so recognition reads alike in both."""
    import paddleocr  # noqa: F401  (puts the wheel's tools package on sys.path)
    from tools.infer.utility import get_rotate_crop_image

    image, quad = place(pattern(), 7.0)
    ours = crop_text_line(image, quad)
    theirs = get_rotate_crop_image(image, order_quad(quad).copy())
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_point_order_does_not_matter():
    image, quad = place(pattern(), -8.0)
    a = crop_text_line(image, quad)
    b = crop_text_line(image, quad[[2, 0, 3, 1]])
    assert np.array_equal(a, b)
    assert np.allclose(order_quad(quad[[3, 1, 0, 2]]), quad.astype(np.float32))


def test_upright_crop_is_rotated_to_read_left_to_right():
    image = np.zeros((200, 200, 3), np.uint8)
    image[20:100, 50:70] = 255  # a 20 x 80 vertical strip
    quad = np.array([[50, 20], [70, 20], [70, 100], [50, 100]], np.float32)
    crop = crop_text_line(image, quad)
    assert crop.shape[:2] == (20, 80)


@pytest.mark.parametrize("angle", [0.0, 12.0, 90.0])
def test_a_context_crop_holds_the_exact_crop_inside_its_pad(angle):
    image, quad = place(pattern(), angle)
    exact = crop_text_line(image, quad)
    context = crop_text_line(image, quad, CONTEXT_MARGIN)
    pad = context_pad(context.shape, CONTEXT_MARGIN)
    assert pad == round(CONTEXT_MARGIN * min(exact.shape[:2])) > 0
    inner = context[pad:-pad, pad:-pad].astype(int)
    assert inner.shape == exact.shape and np.abs(inner - exact).mean() < 1.0  # the warp's fixed-point rounding


def test_a_context_crop_keeps_the_image_around_the_line():
    image = np.random.default_rng(1).integers(0, 255, (100, 200, 3)).astype(np.uint8)
    box = np.array([[40, 30], [160, 30], [160, 62], [40, 62]], np.float32)  # 120 x 32: a pad of 8
    context = crop_text_line(image, box, CONTEXT_MARGIN)
    assert np.array_equal(context, image[22:70, 32:168])


def test_context_pad_is_found_for_every_line_thickness():
    for thickness in range(1, 200):
        for length in (thickness, thickness + 1, 3 * thickness + 7):
            pad = int(round(CONTEXT_MARGIN * thickness))
            shape = (thickness + 2 * pad, length + 2 * pad, 3)
            assert context_pad(shape, CONTEXT_MARGIN) == pad
    with pytest.raises(ValueError, match="not a context crop"):
        context_pad((8, 40, 3), CONTEXT_MARGIN)  # no thickness gives 8 (5 -> 7, 6 -> 10)
