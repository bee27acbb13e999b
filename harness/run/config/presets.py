"""The benchmark presets, as data: ``quick`` in full and ``paper`` as its changes to ``quick``.

A configuration is a plain dict (it is written verbatim into ``run.json``).  ``quick`` shows the
whole pipeline on the embedded photographs on a laptop CPU; ``paper`` is the seed's protocol
(CIFAR from a local folder, 224 x 224 with 16 x 16 blocks for the proposed cipher and ViT-B/16,
32 x 32 with 4 x 4 blocks for the comparison ciphers), meant for a GPU.  :data:`PAPER_CHANGES`
lists exactly the top-level keys the paper protocol sets otherwise, so the difference is the
documentation.  Resolution (preset < file < flags) is :mod:`harness.run.config.resolve`.
"""

from __future__ import annotations

import copy
from typing import Any

#: the seed's Table I pairings: which networks each cipher is evaluated with
PAPER_PAIRINGS: dict[str, list[str]] = {
    "plain": ["vit", "resnet18", "shakedrop"],
    "proposed": ["vit", "vit_keyed"],
    "le": ["adaptation"],
    "ele": ["adaptation"],
    "etc": ["shakedrop"],
    "pe": ["resnet18"],
    # not in the seed's table: the grayscale-based (JPEG) EtC, trained like colour EtC
    "etc_gray": ["shakedrop"],
    # the field's newer ciphers (run when named: --ciphers ak_*,vit_kiya,cfe*): one key for all blocks
    # is what the block-wise adaptation network learns; the ViT ciphers get a ViT with patch = block
    # and their exact model transforms
    "ak_shuffle": ["adaptation"],
    "ak_flip": ["adaptation"],
    "ak_ffx": ["adaptation"],
    "vit_kiya": ["vit", "vit_kiya_keyed"],
    "cfe_v1": ["vit", "vit_cfe_keyed"],
    "cfe_v2": ["vit", "vit_cfe_keyed"],
}

QUICK: dict[str, Any] = {
    "preset": "quick",
    "datasets": ["natural"],
    "data_dir": None,
    "image_size": [32, 32],
    #: the block size of every block-wise cipher without its own ``block_size`` in ``ciphers``
    #: (null: each cipher's own default); ``--block-size`` sets it and drops the ciphers' own
    "block_size": None,
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
    "pairings": PAPER_PAIRINGS,
    #: networks for a cipher the pairings do not name (e.g. a third-party plugin)
    "default_classifiers": ["resnet18"],
    #: measured on 2 CPU cores; the ViT's patch is the cipher's block (4 for block-free ciphers below 128 px, else 16), one torch thread (docs/performance.md): ~4-5 min for the nine cells
    "classifiers": {
        "vit": {"epochs": 4, "batch_size": 128, "lr": 0.05, "warmup_epochs": 1, "model_options": {"size": "nano"}},
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
    #: the channel between user and provider: null (bit-exact) or {jpeg: Q} (harness/transport.py);
    #: a cipher's own section may set its own
    "transport": None,
}

#: the top-level keys the paper protocol sets otherwise than ``quick`` (each replaces quick's value)
PAPER_CHANGES: dict[str, Any] = {
    "preset": "paper",
    "datasets": ["cifar10", "cifar100"],
    "ciphertext_ladder": [10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    "n_train": None,
    "n_test": None,
    "n_attacker": None,
    "ciphers": {**QUICK["ciphers"], "proposed": {"block_size": 16}, "etc_gray": {"block_size": 8}},
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

PAPER: dict[str, Any] = {**copy.deepcopy(QUICK), **copy.deepcopy(PAPER_CHANGES)}

PRESETS = {"quick": QUICK, "paper": PAPER}

#: the block sizes of docs/ciphers.md's 224 x 224 column: 16 x 16 for the seed's cipher (its ViT-B/16
#: patch) and every block-wise comparison cipher; the grayscale-based EtC, documented there at 8 x 8 (the
#: JPEG block) and 16 x 16, at 16 like the others (extended_jigsaw is n/a for it at either: too many
#: piece states for memory, attacks/extended_jigsaw.py MAX_STATES)
BLOCKS_AT_224 = {"proposed": 16, "le": 16, "ele": 16, "etc": 16, "etc_gray": 16}

#: what a run on photographs only (``--images DIR``) changes on top of either preset: the seed's
#: setting, every cipher at 224 x 224 with the blocks above (``block_size`` 16 for the block-wise
#: ciphers the section does not list: ak_*, vit_kiya, cfe_*), instead of 32 x 32 thumbnails.  A
#: ``--config`` file and the flags still win.
PHOTOGRAPH_CHANGES: dict[str, Any] = {
    "image_size": [224, 224],
    "block_size": 16,
    "cipher_image_size": {},
    "classifier_image_size": {},
    "ciphers": {name: {"block_size": size} for name, size in BLOCKS_AT_224.items()},
}

#: with the quick preset's CPU budgets, photographs also keep the GAN's pixels per optimiser step:
#: its batch of 32 images at 32 x 32 is one image at 224 x 224 (32 * 32**2 / 224**2 = 0.65, at
#: least one); the 40 steps stay (docs/benchmark.md, "Your own photographs")
QUICK_PHOTOGRAPH_BUDGETS: dict[str, Any] = {"attacks": {"gan": {"batch_size": 1}}}
