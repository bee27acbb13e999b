"""Interval helpers: closed forms and coverage on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats import bootstrap_mean_interval, mean_interval, wilson_interval


def test_mean_interval_matches_the_normal_formula() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, low, high = mean_interval(values)
    half = 1.959963984540054 * values.std(ddof=1) / 2
    assert mean == 2.5 and low == pytest.approx(2.5 - half) and high == pytest.approx(2.5 + half)
    assert all(math.isnan(v) for v in mean_interval(np.array([1.0]))[1:])


def test_wilson_interval_known_values_and_bounds() -> None:
    rate, low, high = wilson_interval(0, 10)
    assert rate == 0 and low == 0 and high == pytest.approx(0.2775, abs=1e-4)  # the textbook value
    rate, low, high = wilson_interval(10, 10)
    assert rate == 1 and high == pytest.approx(1) and low == pytest.approx(1 - 0.2775, abs=1e-4)
    rate, low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    with pytest.raises(ValueError, match="trials"):
        wilson_interval(0, 0)


def test_bootstrap_interval_is_seeded_and_covers_the_mean() -> None:
    values = np.random.default_rng(1).integers(0, 2, size=(400, 3)).astype(float)
    first, second = bootstrap_mean_interval(values, seed=3), bootstrap_mean_interval(values, seed=3)
    assert first == second
    mean, low, high = first
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert high - low == pytest.approx(2 * 1.96 * values.mean(1).std() / 20, rel=0.2)
