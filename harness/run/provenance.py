"""Provenance of a run: everything needed to reproduce it and render its report (config, seeds,
versions, git commit, plugins, key spaces, split sizes), attached to ``run.json`` beside the
results, never inside a cell's identity.  Never a key.
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ciphers.base import Cipher
from ciphers.contract import ContractViolation, check_key_space
from harness.keys import derive_seed
from harness.registry import attacks, ciphers, classifiers
from harness.results import exact_int_string
from harness.run.cells import CellContext
from harness.run.identity import REPO_ROOT
from harness.run.plan import Cell, image_size


def git_commit(root: Path = REPO_ROOT) -> str:
    """scramblebench's own commit: only when ``root`` (where its packages live) is the top of a git
    checkout; an installed copy inside someone else's repository (a venv in a project) has none."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=10)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return "not a checkout (installed package)"
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("scramblebench", "torch", "torchvision", "timm", "numpy", "scikit-image", "pandas", "opencv-python-headless"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def plugins() -> dict[str, Any]:
    """Registered plugins with their origin, and plugins that failed to load."""
    listing: dict[str, Any] = {}
    for registry in (ciphers, classifiers, attacks):
        listing[registry.kind] = {n: registry.entry(n).origin for n in registry.names()}
        if registry.load_errors:
            listing[f"{registry.kind}_load_errors"] = dict(registry.load_errors)
    return listing


def split_sizes(config: dict[str, Any], ctx: CellContext) -> dict[str, dict[str, int | None]]:
    """Images per dataset and split as loaded (a folder of photographs has what it has), for the report."""
    sizes: dict[str, dict[str, int | None]] = {}
    for dataset in config["datasets"]:
        sizes[dataset] = {}
        for split in ("train", "test", "attacker"):
            try:
                sizes[dataset][split] = len(ctx.dataset(dataset, split, tuple(config["image_size"])))
            except (OSError, ValueError):  # the cells that need it fail with the reason
                sizes[dataset][split] = None
    return sizes


def _key_space_counts(cipher: Cipher) -> dict[str, str | None]:
    """Nominal and effective key space as exact digits; None and the violation when the cipher's
    key space breaks its contract (a NaN or a float: its cells fail with the same line)."""
    try:
        check_key_space(cipher)
    except ContractViolation as violation:
        return {"nominal": None, "effective": None, "contract": str(violation)}
    return {"nominal": exact_int_string(cipher.key_space()), "effective": exact_int_string(cipher.effective_key_space())}


def run_metadata(
    config: dict[str, Any], ctx: CellContext, cells: list[Cell], device: str, started: datetime, adapted: list[str] | None = None
) -> dict[str, Any]:
    """Everything needed to reproduce a run and render its report; never a key.  ``adapted``: the
    lines saying which defaults were fitted to the data (:func:`harness.run.config.fit.fit_to_data`)."""
    names = sorted({c.cipher for c in cells})
    key_spaces = {}
    for name in names:
        cipher = ctx.victim_cipher(name)
        key_spaces[name] = {
            "image_size": list(image_size(config, name)),
            "block_size": cipher.block_size,
            **_key_space_counts(cipher),
            "traits": {**dataclasses.asdict(cipher.traits), "per_image_key": cipher.per_image_key, "identity": cipher.traits.identity},
        }
    master = config["seed"]
    return {
        "config": config,
        "adapted": list(adapted or []),
        "split_sizes": split_sizes(config, ctx),
        "seeds": {
            "master": master,
            "data": derive_seed(master, "data"),
            "victim_keys": "derive_seed(master, 'victim-key', cipher)",
            "training": "derive_seed(master, 'train', classifier)",
            "attacks": "derive_seed(master, 'attack', attack)",
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "plugins": plugins(),
        "attacks": {
            n: {
                "threat_model": getattr(attacks.get(n), "threat_model", "ciphertext-only"),
                "baseline": bool(getattr(attacks.get(n), "baseline", False)),
                "statistical": bool(getattr(attacks.get(n), "statistical", False)),
                "learned": bool(getattr(attacks.get(n), "learned", False)),
                "key_recovery": bool(getattr(attacks.get(n), "key_recovery", False)),
                "reads_models": list(getattr(attacks.get(n), "reads_models", ())),
            }
            for n in attacks.names()
        },
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "started": started.isoformat(timespec="seconds"),
        "key_spaces": key_spaces,
        "cells": len(cells),
    }


def now() -> datetime:
    return datetime.now(timezone.utc)
