"""A checked configuration fitted to the data it reads: the counts that depend on the datasets'
split sizes, ``known_pairs`` and ``ciphertext_ladder``.

A security cell holds out the last ``known_pairs`` test images as the known-plaintext pool and
scores the rest, so ``known_pairs`` at or above a test split fails every security cell, baselines
too; a statistical attack is refitted on the first n ciphertexts for every ladder entry n below
the victim ciphertexts it sees.  A value the user set (a ``--config`` file or a flag) that does
not fit is refused with one line naming the key; a preset's default that does not fit (a small
``--images`` folder) is adapted, and every adaptation is one line that ``validate``, ``plan``
and the report state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection

from harness.data import SPLITS, split_sizes
from harness.run.config.values import ConfigError

#: a default known-plaintext pool takes at most this share of a test split (and at least one image)
DEFAULT_POOL_SHARE = 0.25


@dataclass(frozen=True)
class Fitted:
    """The configuration as the cells will read it, and one line per default adapted to the data."""

    config: dict[str, Any]
    adapted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Split:
    """What one dataset gives a security cell: test images, and the victim's training images."""

    dataset: str
    test: int
    train: int

    def seen(self, known_pairs: int) -> int:
        """Victim ciphertexts an attack on ciphertexts sees: the scored test images and the training set."""
        return self.test - known_pairs + self.train


def fit_to_data(config: dict[str, Any], explicit: Collection[str]) -> Fitted:
    """``config`` (already checked by the schema) with ``known_pairs`` and ``ciphertext_ladder``
    fitted to every dataset's split sizes (:func:`harness.data.split_sizes`); ``explicit`` names
    the top-level keys the user set, which are refused (:class:`ConfigError`) instead of adapted."""
    splits = [_split(config, name) for name in config["datasets"]]
    smallest = min(splits, key=lambda s: s.test)
    if smallest.test < 2:
        raise ConfigError(
            f"n_test: dataset {smallest.dataset} gives {smallest.test} test image(s); a security cell needs at least 2 "
            "(one known-plaintext pair and one image to score)"
        )
    fitted, adapted = dict(config), []
    pairs = int(config["known_pairs"])
    limit = max(1, int(smallest.test * DEFAULT_POOL_SHARE))
    if "known_pairs" in explicit:
        if pairs >= smallest.test:
            raise ConfigError(
                f"known_pairs: {pairs} must be below the {smallest.test} test images of dataset {smallest.dataset} "
                f"(security cells score the test images that are not known pairs); set at most {smallest.test - 1}"
            )
    elif pairs > limit:
        fitted["known_pairs"] = limit
        adapted.append(
            f"known_pairs {pairs} -> {limit}: dataset {smallest.dataset} has {smallest.test} test images "
            f"(the known-plaintext pool takes at most a quarter; {smallest.test - limit} are scored)"
        )
    seen = min(splits, key=lambda s: s.seen(fitted["known_pairs"]))
    holds = seen.seen(fitted["known_pairs"])
    ladder = [int(c) for c in config["ciphertext_ladder"]]
    beyond = [c for c in ladder if c >= holds]
    if beyond:
        if "ciphertext_ladder" in explicit:
            raise ConfigError(
                f"ciphertext_ladder: {beyond[0]} is not below the {holds} victim ciphertexts an attack sees on dataset "
                f"{seen.dataset} ({seen.test - fitted['known_pairs']} scored test images + {seen.train} training images); "
                f"use entries below {holds}, or []"
            )
        kept = [c for c in ladder if c < holds]
        if len(kept) < 2:  # a curve needs points: a quarter and a half of what the attack sees fill in
            kept = sorted({*kept, *(n for n in (holds // 4, holds // 2) if n >= 1)})
        fitted["ciphertext_ladder"] = kept
        adapted.append(
            f"ciphertext_ladder {ladder} -> {fitted['ciphertext_ladder']}: an attack sees {holds} victim ciphertexts "
            f"on dataset {seen.dataset} (always fitted on all of them too)"
        )
    return Fitted(fitted, adapted)


def _split(config: dict[str, Any], dataset: str) -> _Split:
    try:
        sizes = split_sizes(dataset, config["data_dir"], {split: config[f"n_{split}"] for split in SPLITS})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data_dir: {exc}") from None
    return _Split(dataset, sizes["test"], sizes["train"])
