"""Draw text boxes and their texts on an image (for ``ocrforge infer --draw`` and the eval error gallery)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocrforge.resources import font_path

GREEN = (0, 170, 0)
RED = (220, 0, 0)


def draw_lines(image: np.ndarray, boxes: Sequence, texts: Sequence[str], color=RED) -> np.ndarray:
    """A copy of ``image`` (HWC uint8 BGR) with each box outlined in ``color`` (RGB) and its text written
    above it in DejaVu Sans; returns HWC uint8 BGR."""
    canvas = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    draw = ImageDraw.Draw(canvas)
    size = max(10, min(image.shape[:2]) // 30)
    font = ImageFont.truetype(str(font_path()), size)
    for box, text in zip(boxes, texts):
        points = [tuple(map(float, p)) for p in np.asarray(box, dtype=np.float64).reshape(-1, 2)]
        draw.polygon(points, outline=color, width=2)
        x = min(p[0] for p in points)
        y = max(0.0, min(p[1] for p in points) - size - 2)
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=(255, 255, 255))
        draw.text((x, y), text, fill=color, font=font)
    return cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR)


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two HWC uint8 images of the same height next to each other, with a white gap."""
    height = max(left.shape[0], right.shape[0])
    out = np.full((height, left.shape[1] + gap + right.shape[1], 3), 255, dtype=np.uint8)
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out


def write_image(path, image: np.ndarray) -> None:
    """Write an HWC uint8 BGR image; the extension picks the format; non-ASCII paths work.

    The file is written beside ``path`` under a temporary name and then renamed onto it, so a symlink at
    ``path`` is replaced, never written through, and a failed write (full disk) leaves no partial image.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"could not encode {path}; use a .png or .jpg name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
