"""Train and evaluate classifiers on encrypted images, and cache trained models on disk.

The flow of one accuracy cell: draw a batch of *plain* uint8 images on the device
(:mod:`harness.feeding`: stored size, resized there), augment it (random crop with zero padding,
horizontal flip), encrypt it with the cipher (per-image keys follow the dataset
index), and let the model's own input pipeline convert and normalise it.  The optimiser is the
seed's: SGD with momentum 0.9 and weight decay 5e-4, a linear warm-up and a cosine decay to 0.
Training is deterministic on the CPU for a given seed and never touches the caller's global RNG
state; on CUDA it uses bfloat16 autocast and channels-last layout for convolutional networks.

Trained models are cached under a hash of everything that determines them (classifier, resolved
options, training config, cipher name, parameters and a digest of its key, the data's content,
library versions); the file name shows the classifier, the cipher name and the hash, never a key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from harness.cache import CorruptCacheError, cache_key, load_checkpoint, save_checkpoint, tensor_digest
from harness.data import ImageDataset
from harness.feeding import Augmentation, DeviceFeed
from harness.keys import derive_seed, seeded
from harness.metrics import accuracy
from harness.progress import ProgressCallback, report
from harness.registry import classifiers, create_cipher, name_of

#: bump when a change to this module changes what a given configuration trains
#: (2: augmentation drawn once per epoch, images resized per batch in torch)
TRAINING_VERSION = 2
#: optimiser steps between resumable checkpoints of a training cell (None or 0: none)
DEFAULT_CHECKPOINT_STEPS = 200


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines how a classifier is trained (all of it goes into the cache key).

    Attributes:
        epochs: passes over the training split.
        batch_size: images per optimiser step; the last incomplete batch of an epoch is dropped
            (batches are reshuffled every epoch), a split smaller than one batch is one batch.
        lr: peak learning rate on plain images (the seed: 0.03 for ViT-B/16 fine-tuning).
        lr_encrypted: peak learning rate on any other cipher (the seed: 0.3 for ViT); ``None``
            uses ``lr``.  ``vit_keyed`` trains on plain images and so uses ``lr``.
        momentum: SGD momentum (the seed: 0.9).
        weight_decay: SGD weight decay on every parameter (the seed: 5e-4).
        nesterov: Nesterov momentum (Madono's ShakeDrop training used it).
        warmup_epochs: linear warm-up length in epochs (may be fractional), then cosine to 0.
        grad_clip_norm: clip the global gradient norm to this value; ``None`` disables.
        augment: random crop (zero padding ``crop_padding``) and horizontal flip of the *plain*
            uint8 batch before encryption, so blocks stay aligned.
        crop_padding: padding of the random crop, in pixels.
        seed: master seed of the initialisation, batch order, augmentation and stochastic layers.
        model_options: options of the classifier (see ``docs/classifiers.md``), e.g.
            ``{"size": "nano", "patch_size": 4}`` for ``vit``.
        amp: bfloat16 autocast on CUDA (ignored on the CPU, which trains in float32).
        eval_batch_size: images per forward pass in evaluation (does not change the model).
        accumulation_steps: micro-batches per optimiser step: a batch of ``batch_size`` is run
            as that many equal parts whose gradients add up (batch 512 on a 24-80 GB card); the
            same step up to float rounding for networks without batch statistics.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    lr_encrypted: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    warmup_epochs: float = 0.0
    grad_clip_norm: float | None = None
    augment: bool = True
    crop_padding: int = 4
    seed: int = 0
    model_options: Mapping[str, Any] = field(default_factory=dict)
    amp: bool = True
    eval_batch_size: int = 256
    accumulation_steps: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "accumulation_steps"):
            _check_int(name, getattr(self, name), 1)
        if self.batch_size % self.accumulation_steps:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of accumulation_steps {self.accumulation_steps}")
        _check_int("crop_padding", self.crop_padding, 0)
        _check_int("seed", self.seed, 0)
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs"):
            if not isinstance(getattr(self, name), (int, float)) or not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {getattr(self, name)!r}")
        for name in ("lr_encrypted", "grad_clip_norm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not value > 0):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        if not isinstance(self.model_options, Mapping):
            raise ValueError(f"model_options must be a mapping, got {type(self.model_options).__name__}")
        object.__setattr__(self, "model_options", dict(self.model_options))

    def lr_for(self, cipher: Any) -> float:
        """The peak learning rate for training on ``cipher``'s ciphertexts."""
        if name_of(cipher) == "plain" or self.lr_encrypted is None:
            return float(self.lr)
        return float(self.lr_encrypted)


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


# -- public API ------------------------------------------------------------------------------
def fit(
    classifier: str | nn.Module,
    train_data: ImageDataset,
    cipher: Any,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    *,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Train ``classifier`` (a registered name, or a built model trained in place) on ``cipher``'s ciphertexts.

    A classifier derived from a plain model (``vit_keyed``) trains its plain base on plain images
    and returns the transformed model.  Returns the model on ``device`` in eval mode.
    """
    device = torch.device(device)
    if isinstance(classifier, str):
        cls = classifiers.get(classifier)
        options = cls.for_cipher(cipher, config.model_options)
        if cls.plain_base is not None:
            plain = create_cipher("plain", train_data.image_size)
            base_config = dataclasses.replace(config, model_options=options)
            base = fit(cls.plain_base, train_data, plain, base_config, progress, device=device)
            return cls.from_plain(base, cipher)
        model = _build(cls.registry_name, train_data, cipher, options, config.seed)
    elif isinstance(classifier, nn.Module):
        model = classifier
    else:
        raise ValueError(f"classifier must be a registered name or an nn.Module, got {type(classifier).__name__}")
    _train(model, train_data, cipher, config, progress, device, label=_label(classifier, cipher))
    return model


def evaluate(
    model: nn.Module,
    test_data: ImageDataset,
    cipher: Any,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    amp: bool = True,
    image_id_offset: int = 0,
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on ``test_data`` encrypted with ``cipher``.

    Per-image-key ciphers encrypt image i with id ``image_id_offset + i``.
    """
    logits = predict_logits(
        model, test_data, cipher, device=device, batch_size=batch_size, amp=amp, image_id_offset=image_id_offset
    )
    return accuracy(logits, test_data.labels)


def predict_logits(
    model: nn.Module,
    data: ImageDataset,
    cipher: Any,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    amp: bool = True,
    image_id_offset: int = 0,
) -> torch.Tensor:
    """float32 CPU logits ``[N, classes]`` of ``model`` (put in eval mode) on ``data`` encrypted with ``cipher``."""
    _check_int("batch_size", batch_size, 1)
    _check_int("image_id_offset", image_id_offset, 0)
    device = torch.device(device)
    model.to(device).eval()
    channels_last = _channels_last(model, device)
    outputs = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        for start in range(0, len(data), batch_size):
            index = torch.arange(start, min(start + batch_size, len(data)))
            images = _encrypt(cipher, data.batch(index, device), index + image_id_offset, channels_last)
            outputs.append(model(images).float().cpu())
    return torch.cat(outputs)


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
    options = cls.for_cipher(cipher, config.model_options)
    derived = cls.plain_base is not None
    train_cipher = create_cipher("plain", train.image_size) if derived else cipher
    trained_name = cls.plain_base if derived else cls.registry_name
    model, train_seconds, cached, final_loss = _trained_model(
        trained_name, options, train, train_cipher, config,
        cache_dir=cache_dir, device=device, refresh=refresh_cache, progress=progress, checkpoint_every=checkpoint_every,
    )
    started = time.perf_counter()
    # test images get ids after the training images', so no test image shares a per-image key with one
    evaluation = dict(device=device, batch_size=config.eval_batch_size, amp=config.amp, image_id_offset=len(train))
    extra = {"final_train_loss": final_loss}
    if derived:
        plain_logits = predict_logits(model, test, train_cipher, **evaluation)
        logits = predict_logits(cls.from_plain(model, cipher), test, cipher, **evaluation)
        extra["plain_model_accuracy"] = accuracy(plain_logits, test.labels)
        extra["max_abs_logit_diff"] = float((logits - plain_logits).abs().max())
    else:
        logits = predict_logits(model, test, cipher, **evaluation)
    extra["eval_seconds"] = time.perf_counter() - started
    correct = logits.argmax(1) == test.labels
    return AccuracyResult(accuracy(logits, test.labels), train_seconds, cached, extra, correct)


# -- internals -------------------------------------------------------------------------------
def _input_shape(data: ImageDataset, cipher: Any) -> tuple[int, tuple[int, int]]:
    """Channels and size of what the network sees: the ciphertext (etc_gray's is 1 x H x 3W)."""
    _, channels, height, width = cipher.encrypted_shape((1, data.channels, *data.image_size))
    return channels, (height, width)


def _build(name: str, data: ImageDataset, cipher: Any, options: Mapping[str, Any], seed: int) -> nn.Module:
    in_chans, image_size = _input_shape(data, cipher)
    return classifiers.get(name).build(
        num_classes=len(data.classes),
        image_size=image_size,
        block_size=cipher.block_size,
        in_chans=in_chans,
        seed=derive_seed(seed, "init"),
        **options,
    )


def _trained_model(
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
    model = _build(name, data, cipher, options, config.seed)
    path = None
    if cache_dir is not None:
        resolved = classifiers.get(name).resolve_options(image_size=_input_shape(data, cipher)[1], block_size=cipher.block_size, **options)
        digest = cache_key(**_cache_parts(name, resolved, data, cipher, config))
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
    loss, seconds = _train(model, data, cipher, config, progress, device, label=_label(name, cipher), checkpoint=partial, every=checkpoint_every)
    if path is not None and _world()[0] == 0:  # under torch.distributed rank 0 writes, the others hold the same weights
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(path, {"state_dict": state_dict, "train_seconds": seconds, "final_loss": loss})
        if partial is not None:
            partial.unlink(missing_ok=True)
    return model, seconds, False, loss


def _train(
    model: nn.Module,
    data: ImageDataset,
    cipher: Any,
    config: TrainConfig,
    progress: ProgressCallback | None,
    device: torch.device,
    label: str,
    checkpoint: Path | None = None,
    every: int | None = None,
) -> tuple[float, float]:
    """Train ``model`` in place; returns (the mean loss of the last epoch, training seconds).

    Inside a torch.distributed process group (``torchrun``; gloo on the CPU, NCCL on GPUs) every
    rank draws the same batches and augmentation, encrypts the whole batch and trains on its
    1/world share of it under DistributedDataParallel, so the averaged gradient is that of the
    whole batch: the same training as one process up to float rounding (batch-norm statistics
    are per rank, as usual for DDP).  Only rank 0 writes checkpoints.

    ``checkpoint``: a file to resume from when it exists and to save to every ``every``
    optimiser steps: model, optimiser, scheduler, the epoch's batch order and every random
    generator the loop draws from, so a resumed run takes exactly the steps an uninterrupted one
    would have taken.
    """
    n = len(data)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size
    total = steps_per_epoch * config.epochs
    prepare_model(model, device)
    rank, world = _world()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {world} distributed processes")
    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = sgd(model, config, config.lr_for(cipher))
    warmup = round(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
    generator = torch.Generator().manual_seed(derive_seed(config.seed, "batches"))
    feed = DeviceFeed(data, device)
    epoch_loss = math.nan
    done, order, augmentation, running_sum, elapsed = 0, None, None, 0.0, 0.0
    with seeded(derive_seed(config.seed, "layers"), device):
        if checkpoint is not None and checkpoint.exists():
            state = load_checkpoint(checkpoint)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["batches_rng"])
            torch.set_rng_state(state["torch_rng"])
            if device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            done, order, running_sum, elapsed = int(state["step"]), state["order"], float(state["running"]), float(state["elapsed"])
            augmentation = None if state["augmentation"] is None else Augmentation(**state["augmentation"])
        started = time.perf_counter() - elapsed
        for epoch in range(done // steps_per_epoch, config.epochs):
            if done % steps_per_epoch == 0:
                order, running_sum = torch.randperm(n, generator=generator), 0.0
                augmentation = Augmentation.draw(n, config.crop_padding, generator) if config.augment else None
            on_device = augmentation.to(device) if augmentation is not None else None
            running = torch.zeros((), device=device)
            first = done % steps_per_epoch
            for step, (index, plain, labels) in enumerate(feed.epoch(order, batch_size, first, steps_per_epoch), start=first):
                part = on_device.part(step * batch_size, (step + 1) * batch_size) if on_device is not None else None
                running += train_step(trained, optimizer, cipher, plain, labels, index, config, part, (rank, world))
                scheduler.step()
                done += 1
                report(progress, done, total, f"{label}: epoch {epoch + 1}/{config.epochs}")
                if checkpoint is not None and every and done % every == 0 and done < total:
                    so_far = _mean_over_ranks(running, world)  # every rank takes part; rank 0 saves
                    if rank == 0:
                        state = {
                            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "batches_rng": generator.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            "step": done,
                            "order": order,
                            "augmentation": None if augmentation is None else vars(augmentation),
                            "running": running_sum + float(so_far),
                            "elapsed": time.perf_counter() - started,
                        }
                        if device.type == "cuda":
                            state["cuda_rng"] = torch.cuda.get_rng_state(device)
                        save_checkpoint(checkpoint, state)
            epoch_loss = (running_sum + float(_mean_over_ranks(running, world))) / steps_per_epoch  # one host sync per epoch
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(
                    f"{label}: training diverged (loss {epoch_loss}) in epoch {epoch + 1}; lower the learning rate"
                )
    model.eval()
    return epoch_loss, time.perf_counter() - started


def _mean_over_ranks(value: torch.Tensor, world: int) -> torch.Tensor:
    """``value`` averaged over the torch.distributed ranks (itself in one process)."""
    if world == 1:
        return value
    import torch.distributed as dist

    total = value.clone()
    dist.all_reduce(total)
    return total / world


def _world() -> tuple[int, int]:
    """(rank, world size) of the torch.distributed process group, (0, 1) without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def prepare_model(model: nn.Module, device: torch.device) -> None:
    """Move ``model`` to ``device`` in train mode (channels-last for convolutional networks on CUDA)."""
    model.to(device).train()
    if _channels_last(model, device):
        model.to(memory_format=torch.channels_last)


def sgd(model: nn.Module, config: TrainConfig, lr: float) -> torch.optim.SGD:
    """The seed's optimiser: SGD with the config's momentum, weight decay (all parameters) and Nesterov flag."""
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov and config.momentum > 0,
    )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cipher: Any,
    plain: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    config: TrainConfig,
    augmentation: Augmentation | None = None,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """One optimiser step on a plain uint8 batch (augment, encrypt, forward, backward, update); the detached loss.

    ``index`` holds the images' dataset indices (the image ids of per-image-key ciphers; on the
    CPU, where such ciphers derive their keys); ``augmentation``: this batch's crops and flips
    (None: none); ``shard`` = (rank, world): this process trains on the rank-th of world equal
    parts of the batch.  Nothing here waits for the device.
    """
    device = plain.device
    if augmentation is not None:
        plain = augmentation.apply(plain)
    images = _encrypt(cipher, plain, index, _channels_last(model, device))
    rank, world = shard
    if world > 1:
        images, labels = images.chunk(world)[rank], labels.chunk(world)[rank]
    optimizer.zero_grad(set_to_none=True)
    parts = config.accumulation_steps if images.shape[0] % config.accumulation_steps == 0 else 1
    total = torch.zeros((), device=device)
    for part_images, part_labels in zip(images.chunk(parts), labels.chunk(parts)):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"):
            loss = F.cross_entropy(model(part_images).float(), part_labels)
            core = getattr(model, "module", model)  # DistributedDataParallel wraps the classifier
            auxiliary_loss = getattr(core, "auxiliary_loss", None)  # an ImageClassifier's extra term
            auxiliary = auxiliary_loss() if auxiliary_loss is not None else None
            if auxiliary is not None:
                loss = loss + auxiliary
        (loss / parts).backward()
        total += loss.detach() / parts
    if config.grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
    optimizer.step()
    return total


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at optimiser step ``step``: linear warm-up to 1, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    decay = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, decay) / decay))


def _encrypt(cipher: Any, images: torch.Tensor, index: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Encrypt a uint8 batch; per-image-key ciphers get the dataset indices as image ids."""
    image_ids = index if getattr(cipher, "per_image_key", False) else None
    encrypted = cipher.encrypt(images, image_ids=image_ids)
    return encrypted.contiguous(memory_format=torch.channels_last) if channels_last else encrypted


def _channels_last(model: nn.Module, device: torch.device) -> bool:
    core = getattr(model, "module", model)  # through a DistributedDataParallel wrapper
    return device.type == "cuda" and bool(getattr(core, "prefers_channels_last", False))


def _cache_parts(
    name: str, options: Mapping[str, Any], data: ImageDataset, cipher: Any, config: TrainConfig
) -> dict[str, Any]:
    """Everything that determines a trained model, JSON-able, with the key only as a digest."""
    training = dataclasses.asdict(config)
    for unused in ("model_options", "eval_batch_size", "lr", "lr_encrypted"):
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
        "cipher_key": _key_digest(cipher),
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


def _key_digest(cipher: Any) -> str:
    """A digest of the cipher's key arrays (so a different key never reuses a model); never the key."""
    digest = hashlib.blake2b(digest_size=16)
    for name, value in sorted(cipher.key().items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _label(classifier: str | nn.Module, cipher: Any) -> str:
    name = classifier if isinstance(classifier, str) else type(classifier).__name__
    return f"train {name} on {name_of(cipher)}"


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
