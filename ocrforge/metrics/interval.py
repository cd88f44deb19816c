"""How far a set's hmean can be trusted: a bootstrap interval over its images."""

from __future__ import annotations

import numpy as np


def hmean_interval(counts, level: float = 0.95, draws: int = 2000, seed: int = 0) -> dict:
    """Percentile bootstrap interval of the set's hmean from per-image ``(matched, det_care, gt_care)`` counts.

    Images are resampled with replacement and the hmean recomputed from the summed counts, as the metric is.
    The seed is fixed, so the same predictions always give the same interval. Returns ``{"hmean_ci95_low",
    "hmean_ci95_high"}`` (the key names the default level).
    """
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    if len(counts) == 0:
        raise ValueError("hmean_interval: no images")
    picks = np.random.default_rng(seed).integers(0, len(counts), size=(draws, len(counts)))
    matched, det_care, gt_care = (counts[:, k][picks].sum(axis=1) for k in range(3))
    precision = np.divide(matched, det_care, out=np.zeros(draws), where=det_care > 0)
    recall = np.divide(matched, gt_care, out=np.zeros(draws), where=gt_care > 0)
    total = precision + recall
    hmean = np.divide(2 * precision * recall, total, out=np.zeros(draws), where=total > 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(hmean, [tail, 100 - tail])
    return {"hmean_ci95_low": float(low), "hmean_ci95_high": float(high)}
