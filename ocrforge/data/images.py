"""Reading image files for inference and evaluation."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np


class ImageReadError(ValueError):
    """An image file that exists but cannot be decoded."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as HWC uint8 BGR (non-ASCII paths too).

    Raises FileNotFoundError when there is no such file and ImageReadError when it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    image = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{path} is not an image OpenCV can decode (jpg, png, bmp, tiff, webp ...)")
    return image
