"""Benchmark presets and configuration resolution: preset < YAML file < command-line flags.

A configuration is a plain dict (it is written verbatim into ``run.json``).  ``quick`` shows the
whole pipeline on the embedded photographs on a laptop CPU; ``paper`` is the seed's protocol
(CIFAR from a local folder, 224 x 224 with 16 x 16 blocks for the proposed cipher and ViT-B/16,
32 x 32 with 4 x 4 blocks for the comparison ciphers), meant for a GPU.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

#: the seed's Table I pairings: which networks each cipher is evaluated with
SEED_PAIRINGS: dict[str, list[str]] = {
    "plain": ["vit", "resnet18", "shakedrop"],
    "proposed": ["vit", "vit_keyed"],
    "le": ["adaptation"],
    "ele": ["adaptation"],
    "etc": ["shakedrop"],
    "pe": ["resnet18"],
    # not in the seed's table: the grayscale-based (JPEG) EtC, trained like colour EtC
    "etc_gray": ["shakedrop"],
}

QUICK: dict[str, Any] = {
    "preset": "quick",
    "datasets": ["natural"],
    "data_dir": None,
    "image_size": [32, 32],
    "n_train": 1500,
    "n_test": 500,
    "n_attacker": 1000,
    "seed": 0,
    "ciphers": {
        "plain": {"block_size": 1},
        "proposed": {"block_size": 4},
        "le": {"block_size": 4},
        "ele": {"block_size": 4},
        "etc": {"block_size": 4},
        "etc_gray": {"block_size": 4},
        "pe": {"block_size": 1, "key_condition": "diff_key"},
    },
    #: cipher-specific image sizes (the seed runs its cipher at 224 but the others at 32)
    "cipher_image_size": {},
    #: classifier-specific image sizes for accuracy cells (they win over the cipher's)
    "classifier_image_size": {},
    "pairings": SEED_PAIRINGS,
    #: networks for a cipher the pairings do not name (e.g. a third-party plugin)
    "default_classifiers": ["resnet18"],
    #: measured on 2 CPU cores, one torch thread (docs/performance.md): ~4-5 min for the nine cells
    "classifiers": {
        "vit": {"epochs": 4, "batch_size": 128, "lr": 0.05, "warmup_epochs": 1, "model_options": {"size": "nano", "patch_size": 4}},
        "resnet18": {"epochs": 2, "batch_size": 64, "lr": 0.05, "model_options": {"width": 16}},
        "shakedrop": {"epochs": 4, "batch_size": 64, "lr": 0.05, "model_options": {"depth": 8, "alpha": 24}},
        "adaptation": {"epochs": 4, "batch_size": 64, "lr": 0.05, "model_options": {"backbone_options": {"depth": 8, "alpha": 24}}},
    },
    #: ITN and GAN train per cipher; the other attacks need no settings (docs/attacks.md)
    "attacks": {
        "itn": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "width": 32, "train_keys": 100},
        # the attack authors' simplified GAN (docs/attacks.md); 40 steps is what 5 minutes allow, and
        # it restores nothing yet there (measured: a near-constant image, LE signed SSIM 0.20)
        "gan": {"steps": 40, "batch_size": 32, "lr": 2e-4, "betas": [0.5, 0.999]},
    },
    #: victim test images held out as the known-plaintext pool (kpa draws from them; no attack is
    #: scored on them, so every attack is scored on the same images)
    "known_pairs": 32,
    "examples": 6,
    #: numbers of victim ciphertexts statistical attacks are also fitted on besides all they hold (the
    #: curve in the report; the quick run affords one more fit each, docs/attacks.md has the full curves)
    "ciphertext_ladder": [100],
    #: training runs per accuracy cell, each with its own derived seed (intervals: bootstrap over test images)
    "accuracy_seeds": 1,
    #: an attack restores only when its mean SSIM beats the best content-free baseline of its cell
    #: by this much, counted from the lower end of the paired 95% interval (docs/benchmark.md)
    "verdict_margin": 0.05,
}

PAPER: dict[str, Any] = {
    **copy.deepcopy(QUICK),
    "preset": "paper",
    "datasets": ["cifar10", "cifar100"],
    "ciphertext_ladder": [10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    "image_size": [32, 32],
    "n_train": None,
    "n_test": None,
    "n_attacker": None,
    "ciphers": {
        "plain": {"block_size": 1},
        "proposed": {"block_size": 16},
        "le": {"block_size": 4},
        "ele": {"block_size": 4},
        "etc": {"block_size": 4},
        "etc_gray": {"block_size": 8},
        "pe": {"block_size": 1, "key_condition": "diff_key"},
    },
    # the seed fine-tunes ViT-B/16 at 224 x 224 (CIFAR upsampled before encryption), the others at 32
    "cipher_image_size": {"proposed": [224, 224]},
    "classifier_image_size": {"vit": [224, 224]},
    "classifiers": {
        # 10,000 steps with 500 warm-up steps at batch 512 (the seed's ViT fine-tuning recipe)
        "vit": {
            "epochs": 102, "batch_size": 512, "lr": 0.03, "lr_encrypted": 0.3, "warmup_epochs": 5, "grad_clip_norm": 1.0,
            "model_options": {"size": "base", "patch_size": 16, "pretrained_tag": "augreg_in21k", "pretrained": True},
        },
        # Madono et al.'s PyramidNet-110 (alpha 270) + ShakeDrop; cosine decay instead of steps
        "shakedrop": {"epochs": 305, "batch_size": 512, "lr": 0.1, "nesterov": True, "model_options": {"depth": 110, "alpha": 270}},
        "adaptation": {
            "epochs": 305, "batch_size": 512, "lr": 0.1, "nesterov": True,
            "model_options": {"backbone_options": {"depth": 110, "alpha": 270}},
        },
        # the seed gives no ResNet-18 schedule: the common CIFAR recipe
        "resnet18": {"epochs": 200, "batch_size": 128, "lr": 0.1, "model_options": {}},
    },
    # the field's attack settings (Ito et al. ITN; SIA-GAN with a DCGAN discriminator)
    "attacks": {
        "itn": {"epochs": 50, "batch_size": 128, "lr": 1e-3, "loss": "mse", "width": 64},
        # the field's budget: 25 epochs of 50,000 ciphertexts at batch 64
        "gan": {"steps": 19500, "batch_size": 64, "lr": 2e-4, "betas": [0.5, 0.999]},
    },
}

PRESETS = {"quick": QUICK, "paper": PAPER}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, ``None`` values in ``override`` are kept."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config_file(config_file: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, plugin-named sections keyed by registered names."""
    from harness.run.config_schema import ConfigError, canonical_sections

    path = Path(config_file)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).replace("\n", " ")
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    unknown = sorted(str(k) for k in set(loaded) - set(QUICK))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(QUICK), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config file {path} has unknown key(s) {unknown}.{hint} Allowed keys: {', '.join(sorted(QUICK))}")
    return canonical_sections(loaded, where=f" in {path}")


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    origin: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Preset, then the YAML file, then flag overrides (flags left unset are ``None`` and dropped),
    checked against the schema (:func:`harness.run.config_schema.validate_config`).

    ``preset`` is the one given explicitly (``--preset``); ``None`` takes the file's ``preset:``
    key, else ``quick``.  A file's ``preset: paper`` selects the paper preset as the base and its
    other keys apply on top; an explicit ``preset`` that disagrees with the file's is an error.
    ``origin`` names where each override came from (``{"seed": "--seed"}``) for error messages.
    """
    from harness.run.config_schema import ConfigError, validate_config

    loaded = load_config_file(config_file) if config_file is not None else {}
    file_preset = loaded.get("preset")
    for name, where in ((preset, "--preset"), (file_preset, f"preset in {config_file}")):
        if name is not None and name not in PRESETS:
            raise ConfigError(f"preset: unknown preset {name!r} ({where}); allowed: {', '.join(sorted(PRESETS))}")
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ConfigError(
            f"preset: --preset {preset} conflicts with 'preset: {file_preset}' in {config_file}; "
            "give the preset in one place or make them agree"
        )
    chosen = preset or file_preset or "quick"
    config = merge(PRESETS[chosen], loaded)
    sources: dict[str, str] = {}
    for key, value in (overrides or {}).items():
        if value is not None:
            config[key] = value
            sources[key] = (origin or {}).get(key, "a command-line flag")
    return validate_config(config, sources)
