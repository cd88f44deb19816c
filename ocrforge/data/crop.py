"""Cut a text line out of an image by a perspective warp of its quadrilateral."""

from __future__ import annotations

import cv2
import numpy as np

# A crop this much taller than wide is vertical text: it is turned to read left to right.
UPRIGHT_RATIO = 1.5


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


def crop_text_line(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Warp the quadrilateral ``points`` of ``image`` (HWC uint8) to an upright rectangle.

    Points are re-ordered clockwise from the top-left, so any labelling order gives the same crop; a
    polygon with more than 4 points is cut by its minimum-area rectangle. A crop at least 1.5 times taller
    than wide is rotated 90 degrees counter-clockwise, as PaddleOCR does for vertical lines.
    """
    quad = order_quad(points)
    width, height = crop_size(quad)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= UPRIGHT_RATIO * width:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop
