"""Cut a text line out of an image by a perspective warp of its quadrilateral."""

from __future__ import annotations

import cv2
import numpy as np

# A crop this much taller than wide is vertical text: it is turned to read left to right.
UPRIGHT_RATIO = 1.5

# Context crops (the recogniser's training crops, see RecBoxJitter) keep this much of the image around the
# line on every side, as a fraction of the line's thickness (the shorter side of its box).
CONTEXT_MARGIN = 0.25


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points clockwise (in image coordinates) starting from the top-left one. (4, 2) float32."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if len(pts) != 4:
        rect = cv2.minAreaRect(pts)
        pts = cv2.boxPoints(rect).astype(np.float32)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen, since y points down
    start = int(np.argmin(pts[:, 0] + pts[:, 1]))
    return np.roll(pts, -start, axis=0)


def crop_size(quad: np.ndarray) -> tuple[int, int]:
    """(width, height) in pixels of the crop of an ordered quad: its longer opposite sides, truncated as
    PaddleOCR's crop does, so crops (and so the recogniser's reads) match PaddleOCR's pixel for pixel."""
    q = np.asarray(quad, dtype=np.float32)
    width = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2]))
    height = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    return max(1, int(width)), max(1, int(height))


def crop_text_line(image: np.ndarray, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Warp the quadrilateral ``points`` of ``image`` (HWC uint8) to an upright rectangle.

    Points are re-ordered clockwise from the top-left, so any labelling order gives the same crop; a
    polygon with more than 4 points is cut by its minimum-area rectangle. A crop at least 1.5 times taller
    than wide is rotated 90 degrees counter-clockwise, as PaddleOCR does for vertical lines.

    ``margin`` > 0 keeps ``round(margin * thickness)`` pixels of the image around the line on every side (in
    the line's own frame; the thickness is the shorter side of the crop): a context crop, from which
    :func:`context_pad` finds the line again.
    """
    quad = order_quad(points)
    width, height = crop_size(quad)
    pad = int(round(margin * min(width, height)))
    target = np.array([[pad, pad], [pad + width, pad], [pad + width, pad + height], [pad, pad + height]],
                      dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(
        image, matrix, (width + 2 * pad, height + 2 * pad), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= UPRIGHT_RATIO * width:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


def context_pad(shape: tuple[int, ...], margin: float) -> int:
    """The pad of a context crop of ``shape`` (H, W, ...) cut by :func:`crop_text_line` with ``margin``. The
    line's thickness ``t`` and its pad ``round(margin * t)`` add up to the crop's shorter side ``s`` as
    ``t + 2 * pad``; the one ``t`` that gives back ``s``."""
    side = min(shape[0], shape[1])
    thickness = int(round(side / (1 + 2 * margin)))
    for t in (thickness, thickness - 1, thickness + 1):
        pad = int(round(margin * t))
        if t >= 1 and t + 2 * pad == side:
            return pad
    raise ValueError(f"a crop of {shape[1]}x{shape[0]} px is not a context crop with margin {margin}")
