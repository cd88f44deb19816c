"""The bootstrap interval of a set's hmean, from per-image counts."""

import numpy as np
import pytest

from ocrforge.metrics import hmean_interval


def test_hmean_interval_from_per_image_counts():
    # identical images: every resample has the same hmean
    same = hmean_interval([[8, 10, 10]] * 5)
    assert same == {"hmean_ci95_low": pytest.approx(0.8), "hmean_ci95_high": pytest.approx(0.8)}
    # varied images: the interval holds the set's figure, is reproducible, and narrows with 4x the images
    rng = np.random.default_rng(1)
    gt = rng.integers(20, 60, size=20)
    matched = (gt * rng.uniform(0.7, 1.0, size=20)).astype(int)
    counts = np.stack([matched, gt, gt], axis=1)
    small = hmean_interval(counts)
    point = matched.sum() / gt.sum()
    assert small["hmean_ci95_low"] < point < small["hmean_ci95_high"]
    assert hmean_interval(counts) == small
    large = hmean_interval(np.tile(counts, (4, 1)))
    width = lambda ci: ci["hmean_ci95_high"] - ci["hmean_ci95_low"]
    assert 0.35 < width(large) / width(small) < 0.65  # about 1/sqrt(4)
    with pytest.raises(ValueError, match="no images"):
        hmean_interval([])
