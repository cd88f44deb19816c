"""Reading image files for inference and evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"


class ImageReadError(ValueError):
    """An image file that exists but cannot be decoded (empty, truncated, too large, not an image)."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as HWC uint8 BGR (non-ASCII paths too).

    An image with an alpha channel (RGBA PNG, WebP, TIFF) is composited on white, as image viewers show it:
    black text on transparent pixels reads as black on white, not as black on black.

    Raises FileNotFoundError when there is no such file, and ImageReadError (naming the file and what is
    wrong: empty file, too many pixels for OpenCV, not an image) when it cannot be read or decoded; never
    ``cv2.error``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageReadError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageReadError(f"{path} is an empty file (0 bytes), not an image")
    try:
        return decode_image(data)
    except cv2.error as exc:
        raise ImageReadError(_decode_failure(path, exc)) from exc
    except ImageReadError as exc:
        raise ImageReadError(f"{path} {exc}") from None


def decode_image(data: np.ndarray) -> np.ndarray:
    """Decode the bytes of an image file (1-D uint8) as HWC uint8 BGR, alpha composited on white.

    A JPEG (no alpha) is decoded once with ``IMREAD_COLOR``; other formats are decoded unchanged first, and an
    image without alpha is then decoded with ``IMREAD_COLOR``, so its pixels (and EXIF orientation) are exactly
    what ``IMREAD_COLOR`` gives. Raises ImageReadError (no file name) or ``cv2.error`` (OpenCV's reason).
    """
    if data[:3].tobytes() != JPEG_MAGIC:
        raw = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ImageReadError("is not an image OpenCV can decode (jpg, png, bmp, tiff, webp ...)")
        if raw.ndim == 3 and raw.shape[2] == 4:
            return composite_on_white(raw)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError("is not an image OpenCV can decode (jpg, png, bmp, tiff, webp ...)")
    return image


def composite_on_white(bgra: np.ndarray) -> np.ndarray:
    """An HWC BGRA image (uint8 or uint16) over a white background: HWC uint8 BGR, rounded to nearest."""
    if bgra.dtype == np.uint8:
        color, alpha = bgra[..., :3].astype(np.uint32), bgra[..., 3:].astype(np.uint32)
        return ((color * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    top = float(np.iinfo(bgra.dtype).max) if bgra.dtype.kind in "ui" else 1.0
    color, alpha = bgra[..., :3].astype(np.float64) / top, bgra[..., 3:].astype(np.float64) / top
    return np.clip(np.rint(255.0 * (color * alpha + (1.0 - alpha))), 0, 255).astype(np.uint8)


def _decode_failure(path: Path, exc: cv2.error) -> str:
    """What to tell the user when OpenCV raised instead of returning None."""
    reason = str(exc)
    if "CV_IO_MAX_IMAGE_PIXELS" in reason or "CV_IO_MAX_IMAGE_WIDTH" in reason or "CV_IO_MAX_IMAGE_HEIGHT" in reason:
        size = declared_size(path)
        limit = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", 1 << 30))
        what = f"{size[0]} x {size[1]} pixels" if size else "its size"
        return (f"{path} is too large: {what} exceeds OpenCV's limit of {limit} pixels (2^30 by default, "
                f"each side at most 2^20); shrink the image, or raise OPENCV_IO_MAX_IMAGE_PIXELS if memory allows")
    detail = reason.strip().splitlines()[-1] if reason.strip() else type(exc).__name__
    return f"{path} could not be decoded by OpenCV (truncated or corrupt?): {detail}"


def declared_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """The (width, height) in pixels an image file's header declares, read by Pillow without decoding the
    pixels (and without Pillow's decompression-bomb refusal); None if Pillow cannot tell."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            return tuple(image.size)
    except Exception:  # noqa: BLE001 - only used to word an error message
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
