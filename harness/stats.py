"""Intervals for the report's decisions: every "restores", "resists" and "holds" comes with one.

All are 95% intervals.  Means of per-image scores use the normal approximation (hundreds of
images per cell); proportions (identification rates) use Wilson's score interval, which stays
inside [0, 1] and behaves at rates near 0 and 1; accuracy differences use a paired bootstrap
over test images, seeded, so a report is reproducible.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its normal-approximation 95% interval (NaN bounds for fewer than 2 values)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan, math.nan
    half = Z95 * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def wilson_interval(successes: float, trials: int) -> tuple[float, float, float]:
    """Rate and Wilson score 95% interval of ``successes`` out of ``trials``."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    rate = successes / trials
    z2 = Z95 * Z95
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z95 * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return rate, max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_interval(values: np.ndarray, seed: int = 0, rounds: int = 2000) -> tuple[float, float, float]:
    """Mean of ``values`` (over axis 0: images; further axes, e.g. seeds, are averaged) and the
    2.5/97.5 percentiles of its bootstrap over images."""
    array = np.asarray(values, dtype=np.float64)
    per_image = array.reshape(array.shape[0], -1).mean(1)
    generator = np.random.default_rng(seed)
    draws = generator.integers(0, per_image.size, size=(rounds, per_image.size))
    means = per_image[draws].mean(1)
    return float(per_image.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
