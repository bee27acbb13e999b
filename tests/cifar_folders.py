"""Tiny CIFAR-10/100 folders in the exact python-pickle format, written by tests (nothing downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> np.ndarray:
    """``root/cifar-10-batches-py`` with five training batches and a test batch; returns the test rows."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows[name] = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": rows[name], b"labels": labels, b"batch_label": name.encode()}, handle)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle)
    return rows["test_batch"]


def write_cifar100(root: Path, train: int = 6, test: int = 3, seed: int = 1) -> None:
    """``root/cifar-100-python`` with ``train`` and ``test`` files and the fine label names."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, count in (("train", train), ("test", test)):
        fine = [int(v) for v in rng.integers(0, 100, count)]
        content = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), b"fine_labels": fine, b"coarse_labels": [0] * count}
        with (folder / name).open("wb") as handle:
            pickle.dump(content, handle)
    with (folder / "meta").open("wb") as handle:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, handle)
