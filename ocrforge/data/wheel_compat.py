"""Fixes for paddleocr 2.10 transforms that break under NumPy 2, applied before the transforms are built."""

from __future__ import annotations

import numpy as np

_applied = False


def _region_wise_random_select(regions, max_size):
    """Two random positions, each drawn from a randomly chosen region: (min, max).

    Same draws as paddleocr's version; that one converts a 1-element array with ``int()``, which NumPy 2
    refuses ("only 0-dimensional arrays can be converted").
    """
    chosen = np.random.choice(len(regions), 2)
    values = [int(np.random.choice(regions[index], size=1)[0]) for index in chosen]
    return min(values), max(values)


def apply_wheel_fixes() -> None:
    """Patch the wheel's ``EastRandomCropData`` helper once per process (idempotent)."""
    global _applied
    if _applied:
        return
    import paddleocr  # noqa: F401  (puts the wheel's ppocr package on sys.path)
    from ppocr.data.imaug import random_crop_data

    random_crop_data.region_wise_random_select = _region_wise_random_select
    _applied = True
