"""Reading image files: every bad file is an ImageReadError naming it (never cv2.error); alpha on white."""

import cv2
import numpy as np
import pytest

from image_files import png_with_header, transparent_text
from ocrforge.data.images import ImageReadError, read_image


def test_zero_byte_file_is_an_image_read_error(tmp_path):
    empty = tmp_path / "b.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError) as info:
        read_image(empty)
    assert str(info.value) == f"{empty} is an empty file (0 bytes), not an image"


def test_over_size_png_says_how_large(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_with_header(40000, 40000))
    with pytest.raises(ImageReadError) as info:
        read_image(big)
    assert str(info.value) == (
        f"{big} is too large: 40000 x 40000 pixels exceeds OpenCV's limit of 1073741824 pixels (2^30 by "
        f"default, each side at most 2^20); shrink the image, or raise OPENCV_IO_MAX_IMAGE_PIXELS if memory allows")
    assert not isinstance(info.value, cv2.error)


def test_not_an_image_and_missing_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageReadError, match=r"bad.png is not an image OpenCV can decode \(jpg, png"):
        read_image(bad)
    with pytest.raises(FileNotFoundError, match="nope.jpg not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path)  # a folder is not an image file


def test_transparent_background_is_composited_on_white(tmp_path):
    gray = np.full((4, 6), 255, np.uint8)
    gray[1, 1:5] = (0, 64, 128, 254)  # full ink, three partial inks
    path = tmp_path / "t.png"
    cv2.imwrite(str(path), transparent_text(gray))
    assert cv2.imread(str(path)).max() == 0  # what OpenCV's colour read gives: all black, the text lost
    image = read_image(path)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    # alpha a over white: 0 * a + 255 * (1 - a), rounded: exactly the grey the ink was made from
    assert (image == gray[..., None]).all()


def test_alpha_blends_colour_on_white(tmp_path):
    bgra = np.array([[[0, 0, 255, 255], [0, 0, 255, 0], [200, 100, 0, 51], [10, 20, 30, 255]]], np.uint8)
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), bgra)
    assert read_image(path).tolist() == [[[0, 0, 255], [255, 255, 255], [244, 224, 204], [10, 20, 30]]]


@pytest.mark.parametrize("name", ["a.png", "a.jpg", "a.bmp"])
def test_images_without_alpha_read_as_opencv_colour(tmp_path, name):
    rng = np.random.default_rng(0)
    path = tmp_path / name
    cv2.imwrite(str(path), rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    assert np.array_equal(read_image(path), cv2.imread(str(path), cv2.IMREAD_COLOR))
    grey = tmp_path / f"grey_{name}"
    cv2.imwrite(str(grey), rng.integers(0, 256, (9, 7), dtype=np.uint8))
    assert np.array_equal(read_image(grey), cv2.imread(str(grey), cv2.IMREAD_COLOR))
