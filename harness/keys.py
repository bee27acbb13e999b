"""Seeded key material: every key is drawn from ``numpy.random.default_rng(seed)`` (PCG64).

Keys are drawn on the CPU with numpy so the same seed gives the same key on every machine and
device; per-purpose seeds come from :func:`derive_seed` so components never share a stream.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Iterator

import numpy as np
import torch


def rng(seed: int) -> np.random.Generator:
    """The generator every key is drawn from: ``Generator(PCG64(seed))``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def derive_seed(master: int, *purpose: object) -> int:
    """A stable 63-bit seed for one purpose, e.g. ``derive_seed(0, "key", "proposed")``."""
    text = "/".join([str(int(master)), *map(str, purpose)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def check_permutation(values: object, length: int | None, name: str) -> np.ndarray:
    """``values`` as int64 if it is a permutation of ``range(length)`` (any length if None)."""
    array = np.asarray(values)
    if length is None and array.ndim == 1 and array.shape[0] > 0:
        length = array.shape[0]
    if array.ndim != 1 or array.shape[0] != length:
        raise ValueError(
            f"{name} must be a 1-D permutation of length {length}, got shape {tuple(array.shape)}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if not np.array_equal(np.sort(array), np.arange(length)):
        raise ValueError(f"{name} is not a permutation of 0..{length - 1} (repeated or missing values)")
    return array


def check_choices(values: object, shape: tuple[int, ...], n_choices: int, name: str) -> np.ndarray:
    """``values`` as an int64 array of ``shape`` with entries in ``0..n_choices-1``, else ValueError."""
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= n_choices):
        raise ValueError(f"{name} entries must lie in 0..{n_choices - 1}")
    return array


def log2_factorial(n: int) -> float:
    """log2(n!) via lgamma, exact enough for key-space tables."""
    return math.lgamma(n + 1) / math.log(2)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's CPU generator (and a CUDA ``device``'s) seeded; the caller's state is restored.

    Network initialisation and stochastic layers draw from torch's global generators; forking
    them keeps a component's randomness explicit without changing its caller's random state.
    """
    cuda = []
    if device is not None and device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed % 2**63)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed % 2**63)
        yield

