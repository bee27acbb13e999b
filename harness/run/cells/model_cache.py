"""The trained-model cache of accuracy cells: a model is trained once and stored under a hash of
everything that determines it (classifier, resolved options, training config, cipher name,
parameters and a digest of its key, the data's content, library versions); the file name shows
the classifier, the cipher name and the hash, never a key.  The keys are those of
:mod:`harness.training`'s ``TRAINING_VERSION``; a run folder's ``cache/`` keeps working.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import timm
import torch
from torch import nn

from harness.cache import CorruptCacheError, cache_key, load_checkpoint, save_checkpoint, tensor_digest
from harness.data import ImageDataset
from harness.progress import ProgressCallback
from harness.registry import classifiers, name_of
from harness.training import TRAINING_VERSION, TrainConfig, build_model, input_shape, train, train_label
from harness.world import current_world


def trained_model(
    name: str,
    options: Mapping[str, Any],
    data: ImageDataset,
    cipher: Any,
    config: TrainConfig,
    *,
    cache_dir: Path | None,
    device: torch.device,
    refresh: bool,
    progress: ProgressCallback | None,
    checkpoint_every: int | None = None,
) -> tuple[nn.Module, float, bool, float]:
    """(model, train seconds, came from cache, final epoch's mean loss), training only on a cache miss.

    With a cache, training writes a resumable checkpoint (``<entry>.partial``) every
    ``checkpoint_every`` optimiser steps; a killed or preempted cell resumes from it and ends
    with the same weights as an uninterrupted run.
    """
    model = build_model(name, data, cipher, options, config.seed)
    path = None
    if cache_dir is not None:
        resolved = classifiers.get(name).resolve_options(image_size=input_shape(data, cipher)[1], block_size=cipher.block_size, **options)
        digest = cache_key(**cache_parts(name, resolved, data, cipher, config))
        path = Path(cache_dir) / f"{name}-{name_of(cipher)}-{digest}.pt"
        if path.exists() and not refresh:
            state = load_checkpoint(path)
            try:
                model.load_state_dict(state["state_dict"])
                seconds, loss = float(state["train_seconds"]), float(state["final_loss"])
            except (KeyError, RuntimeError, TypeError, ValueError) as exc:
                raise CorruptCacheError(
                    f"cache file {path} does not hold a matching {name} model ({type(exc).__name__}: {exc}); "
                    "delete it or rerun with --refresh-cache"
                ) from exc
            return model.to(device).eval(), seconds, True, loss
    partial = None if path is None or not checkpoint_every else path.with_name(path.name + ".partial")
    if partial is not None and refresh:
        partial.unlink(missing_ok=True)
    world = current_world()
    loss, seconds = train(model, data, cipher, config, progress, device, train_label(name, cipher), partial, checkpoint_every, world)
    if path is not None and world.is_leader:  # under torch.distributed rank 0 writes, the others hold the same weights
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(path, {"state_dict": state_dict, "train_seconds": seconds, "final_loss": loss})
        if partial is not None:
            partial.unlink(missing_ok=True)
    return model, seconds, False, loss


def cache_parts(
    name: str, options: Mapping[str, Any], data: ImageDataset, cipher: Any, config: TrainConfig
) -> dict[str, Any]:
    """Everything that determines a trained model, JSON-able, with the key only as a digest."""
    training = dataclasses.asdict(config)
    # compile changes float rounding, not what is trained: compiled and eager runs share a model
    for unused in ("model_options", "eval_batch_size", "lr", "lr_encrypted", "compile"):
        training.pop(unused)
    training["lr"] = config.lr_for(cipher)
    return {
        "kind": "classifier",
        "training_version": TRAINING_VERSION,
        "classifier": name,
        "options": dict(options),
        "training": training,
        "cipher": name_of(cipher),
        "cipher_params": cipher.params(),
        "cipher_key": key_digest(cipher),
        "data": {
            "name": data.name,
            "split": data.split,
            "n": len(data),
            "stored_shape": list(data.stored.shape),
            "image_size": list(data.image_size),
            "classes": list(data.classes),
            "content": tensor_digest(data.stored, data.labels),
        },
        "torch": torch.__version__,
        "timm": timm.__version__,
    }


def key_digest(cipher: Any) -> str:
    """A digest of the cipher's key arrays (so a different key never reuses a model); never the key."""
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted(cipher.key().items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
