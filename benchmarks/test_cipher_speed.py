"""Encrypt and decrypt throughput of every registered cipher, each against ``x.clone()`` of the same batch.

Run: ``python -m pytest benchmarks -m benchmark --benchmark-only`` (add ``--benchmark-timer
time.thread_time`` to time CPU time instead of wall time: on a loaded machine wall time charges
long calls, not the short clone, with the time other jobs hold the core).  Every result carries, in
``extra_info``, the median of ``x.clone()`` timed in the same test right around the cipher's rounds
and the ratio of the medians; the session ends with a markdown table of both (``conftest.py``).
Block sizes: each cipher's default on 32 x 32, 16 on 224 x 224 (1 for pixel-wise ciphers).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from pytest_benchmark.utils import load_timer

from harness import create_cipher
from harness.registry import ciphers

SHAPES = {"256x3x32x32": (256, 3, 32, 32), "64x3x224x224": (64, 3, 224, 224)}
#: (label, registered name, options): every cipher, plus PE's same_key form next to its diff_key default
VARIANTS = [(name, name, {}) for name in ciphers.names()] + [("pe same_key", "pe", {"key_condition": "same_key"})]
#: seconds of cipher rounds to aim for per benchmark (the rounds stay within 5..50)
TARGET_SECONDS = 1.0


def _block_size(name: str, side: int) -> int:
    default = ciphers.get(name).default_block_size
    return default if default == 1 or side <= 32 else 16


def _timings(function: Callable[[], object], rounds: int, clock: Callable[[], float]) -> list[float]:
    """Seconds of each of ``rounds`` calls on ``clock`` (pytest-benchmark's, so both sides of a ratio agree)."""
    samples = []
    for _ in range(rounds):
        start = clock()
        function()
        samples.append(clock() - start)
    return samples


def _median(samples: list[float]) -> float:
    ordered = sorted(samples)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@pytest.mark.benchmark
@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize(("label", "name", "options"), VARIANTS, ids=[v[0].replace(" ", "-") for v in VARIANTS])
def test_cipher_speed(
    benchmark, request: pytest.FixtureRequest, speed_table: list[dict], label: str, name: str, options: dict,
    shape_name: str, direction: str,
) -> None:
    shape = SHAPES[shape_name]
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cipher = create_cipher(name, shape[2:], block_size=_block_size(name, shape[-1]), seed=0, **options)
    ciphertexts = cipher.encrypt(images)
    run = (lambda: cipher.encrypt(images)) if direction == "encrypt" else (lambda: cipher.decrypt(ciphertexts))
    clock = load_timer(str(request.config.getoption("benchmark_timer"))).target  # default time.perf_counter
    first = _timings(run, 1, clock)[0]  # also warms the cipher's cached maps
    rounds = int(min(50, max(5, TARGET_SECONDS / max(first, 1e-6))))
    clone_rounds = max(rounds, 21)
    clone = _timings(images.clone, clone_rounds, clock)
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    clone += _timings(images.clone, clone_rounds, clock)
    cipher_median, clone_median = benchmark.stats.stats.median, _median(clone)
    benchmark.extra_info.update(
        cipher=label, shape=shape_name, direction=direction, block_size=cipher.block_size,
        clone_median_s=clone_median, ratio_to_clone=cipher_median / clone_median,
        threads=torch.get_num_threads(), clock=getattr(clock, "__name__", str(clock)),
    )
    speed_table.append(dict(benchmark.extra_info, median_s=cipher_median))
