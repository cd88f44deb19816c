"""Reading order: a page's text boxes grouped into lines, top to bottom, and each line left to right.

The deployed system joins its reads in this order into ``full_text``; the end-to-end metric builds the expected
full text of the labels the same way, so the two compare like with like.
"""

from __future__ import annotations

import numpy as np


def box_points(box) -> np.ndarray:
    points = np.asarray(box, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        raise ValueError("a text box has no points; expected (P, 2) corner coordinates.")
    return points


def reading_lines(boxes) -> list[list[int]]:
    """Box indices grouped into text lines: lines top to bottom, boxes left to right within a line.

    Boxes are taken in order of their vertical centre; a box joins the line being built when its
    vertical centre lies within half the line's mean box height of the line's mean vertical centre,
    otherwise it starts a new line. ``boxes`` is a sequence of (P, 2) point arrays.
    """
    extents = []
    for box in boxes:
        points = box_points(box)
        (x0, y0), (_, y1) = points.min(axis=0), points.max(axis=0)
        extents.append((x0, (y0 + y1) / 2.0, y1 - y0))
    by_centre = sorted(range(len(extents)), key=lambda i: (extents[i][1], extents[i][0]))
    lines: list[list[int]] = []
    for i in by_centre:
        if lines:
            line = lines[-1]
            centre = np.mean([extents[j][1] for j in line])
            height = np.mean([extents[j][2] for j in line])
            if abs(extents[i][1] - centre) <= height / 2.0:
                line.append(i)
                continue
        lines.append([i])
    return [sorted(line, key=lambda j: extents[j][0]) for line in lines]


def reading_order(boxes) -> list[int]:
    """Box indices in reading order (see ``reading_lines``), flattened."""
    return [i for line in reading_lines(boxes) for i in line]


def full_text(boxes, texts) -> str:
    """The texts in reading order: boxes on one line joined with " ", lines joined with "\\n"."""
    if len(boxes) != len(texts):
        raise ValueError(f"full_text: {len(boxes)} boxes but {len(texts)} texts.")
    return "\n".join(" ".join(texts[i] for i in line) for line in reading_lines(boxes))
