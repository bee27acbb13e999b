"""The accuracy cell: train (or load) a classifier on a cipher's ciphertexts for every training
seed and test it on encrypted test images, with a bootstrap interval over the test images."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.data import ImageDataset
from harness.keys import derive_seed
from harness.metrics import accuracy
from harness.progress import ProgressCallback
from harness.registry import classifiers, create_cipher
from harness.transport import unwrapped
from harness.run.cells.context import CellContext
from harness.run.cells.model_cache import trained_model
from harness.run.cells.output import CellOutput
from harness.run.plan import Cell, cell_image_size, trained_classifier
from harness.stats import bootstrap_mean_interval
from harness.training import DEFAULT_CHECKPOINT_STEPS, TrainConfig, predict_logits


@dataclass
class AccuracyResult:
    """One accuracy cell: test accuracy in [0, 1], training seconds (as measured when the model was
    trained, also for a cache hit), whether the model came from the cache, extra numbers, and
    whether each test image was classified correctly (for intervals and paired comparisons)."""

    accuracy: float
    train_seconds: float
    cached: bool
    extra: dict[str, float] = field(default_factory=dict)
    correct: torch.Tensor | None = None


def classifier_network(
    classifier: str,
    cipher: Any,
    train: ImageDataset,
    config: TrainConfig,
    *,
    cache_dir: Path | None,
    device: torch.device,
    refresh_cache: bool = False,
    progress: ProgressCallback | None = None,
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_STEPS,
) -> tuple[nn.Module, float, bool, float]:
    """The network ``classifier``'s accuracy cell trains for ``cipher`` (a derived one's plain base,
    on plain images), trained or loaded from the cache: :func:`trained_model`'s four values."""
    cls = classifiers.get(classifier)
    options = cls.for_cipher(cipher, config.model_options)
    derived = cls.plain_base is not None
    name = cls.plain_base if derived else cls.registry_name
    train_cipher = create_cipher("plain", train.image_size) if derived else cipher
    return trained_model(name, options, train, train_cipher, config, cache_dir=cache_dir, device=device,
                         refresh=refresh_cache, progress=progress, checkpoint_every=checkpoint_every)


def run_accuracy_cell(
    classifier: str,
    cipher: Any,
    train: ImageDataset,
    test: ImageDataset,
    config: TrainConfig,
    *,
    cache_dir: Path | None,
    device: str | torch.device = "cpu",
    refresh_cache: bool = False,
    progress: ProgressCallback | None = None,
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_STEPS,
) -> AccuracyResult:
    """Train (or load from ``cache_dir``) ``classifier`` for ``cipher`` and test it on encrypted test images.

    Per-image-key ciphers encrypt training image i with id i and test image j with id
    ``len(train) + j``.  ``vit_keyed`` loads or trains the plain ``vit`` (the same cache entry as
    the ``vit`` cell on ``plain`` with the same config), transforms it with the cipher's key and
    evaluates it on the encrypted test split with no retraining; its extras report the plain
    model's accuracy on plain test images and the largest logit difference between the two.
    """
    device = torch.device(device)
    cls = classifiers.get(classifier)
    derived = cls.plain_base is not None
    train_cipher = create_cipher("plain", train.image_size) if derived else cipher
    model, train_seconds, cached, final_loss = classifier_network(
        classifier, cipher, train, config,
        cache_dir=cache_dir, device=device, refresh_cache=refresh_cache, progress=progress, checkpoint_every=checkpoint_every,
    )
    started = time.perf_counter()
    # test images get ids after the training images', so no test image shares a per-image key with one
    evaluation = dict(device=device, batch_size=config.eval_batch_size, amp=config.amp, image_id_offset=len(train))
    extra = {"final_train_loss": final_loss}
    if derived:
        plain_logits = predict_logits(model, test, train_cipher, **evaluation)
        logits = predict_logits(cls.from_plain(model, unwrapped(cipher)), test, cipher, **evaluation)
        extra["plain_model_accuracy"] = accuracy(plain_logits, test.labels)
        extra["max_abs_logit_diff"] = float((logits - plain_logits).abs().max())
    else:
        logits = predict_logits(model, test, cipher, **evaluation)
    extra["eval_seconds"] = time.perf_counter() - started
    correct = logits.argmax(1) == test.labels
    return AccuracyResult(accuracy(logits, test.labels), train_seconds, cached, extra, correct)


def train_config(config: dict[str, Any], trained: str, repeat: int = 0) -> TrainConfig:
    """The training settings of network ``trained`` in a run; repeat 0 keeps the seed (and cache
    entry) of a single-seed run, later repeats derive their own."""
    purpose = ("train", trained) if repeat == 0 else ("train", trained, "repeat", repeat)
    return TrainConfig(**{"seed": derive_seed(config["seed"], *purpose), **dict(config["classifiers"].get(trained) or {})})


def accuracy_cell(cell: Cell, ctx: CellContext) -> CellOutput:
    # a derived classifier (vit_keyed) reuses the training settings, size and seed of the network
    # it is derived from, so it transforms the very model of that network's plain cell
    trained = trained_classifier(cell.classifier)
    size = cell_image_size(ctx.config, cell)
    cipher = ctx.victim_cipher(cell.cipher, size)
    train, test = ctx.dataset(cell.dataset, "train", size), ctx.dataset(cell.dataset, "test", size)
    if not train.classes:
        note = f"dataset {cell.dataset} has no labels: accuracy cells need a labelled dataset (natural, cifar10, cifar100, folder)"
        return CellOutput([{**ctx.row_base(cell), "status": "n/a", "metric": "accuracy", "note": note}])
    results = []
    for repeat in range(int(ctx.config["accuracy_seeds"])):
        results.append(run_accuracy_cell(
            cell.classifier,
            cipher,
            train,
            test,
            train_config(ctx.config, trained, repeat),
            cache_dir=ctx.cache_dir,
            device=ctx.device,
            refresh_cache=ctx.refresh_cache,
            progress=ctx.cell_progress(cell),
        ))
    correct = torch.stack([r.correct for r in results], dim=1).double().numpy()  # [images, seeds]
    mean, low, high = bootstrap_mean_interval(correct, seed=derive_seed(ctx.config["seed"], "bootstrap", *cell.id))
    base = {**ctx.row_base(cell), "status": "ok", "n": len(test)}
    rows = [{**base, "metric": "accuracy", "value": mean, "ci95_low": low, "ci95_high": high,
             "note": f"95% bootstrap interval over test images; {len(results)} training seed(s)"}]
    if len(results) > 1:
        rows.append({**base, "metric": "accuracy_seed_sd", "value": float(np.std([r.accuracy for r in results], ddof=1))})
    rows += [{**base, "metric": name, "value": value} for name, value in sorted(results[0].extra.items())]
    cached = all(r.cached for r in results)
    rows.append({**base, "metric": "train_seconds", "value": sum(r.train_seconds for r in results), "note": "cached" if cached else ""})
    return CellOutput(rows, per_image={"correct": correct.mean(1)})
