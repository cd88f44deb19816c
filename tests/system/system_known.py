"""An image with known text lines, for the system tests."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Three words, two on the first line and one on the second, in reading order.
KNOWN_WORDS = [("LOT4711", (20, 30)), ("EXP2027", (230, 30)), ("SN12345", (20, 120))]
KNOWN_FULL_TEXT = "LOT4711 EXP2027\nSN12345"


def make_known_image() -> tuple[np.ndarray, list[dict]]:
    """A 400x200 white image with KNOWN_WORDS in black DejaVu Sans Bold, and their PPOCRLabel boxes."""
    from ocrforge.resources import font_path

    canvas = Image.new("RGB", (400, 200), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(str(font_path("DejaVuSans-Bold.ttf")), 30)
    boxes = []
    for text, (x, y) in KNOWN_WORDS:
        draw.text((x, y), text, fill="black", font=font)
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
        boxes.append({"transcription": text, "difficult": False,
                      "points": [[x0 - 3, y0 - 3], [x1 + 3, y0 - 3], [x1 + 3, y1 + 3], [x0 - 3, y1 + 3]]})
    return cv2.cvtColor(np.asarray(canvas), cv2.COLOR_RGB2BGR), boxes
