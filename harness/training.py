"""Train and evaluate classifiers on encrypted images: the loop only.

The flow of one accuracy cell: draw a batch of *plain* uint8 images on the device
(:mod:`harness.feeding`: stored size, resized there), augment it (random crop with zero padding,
horizontal flip), encrypt it with the cipher (per-image keys follow the dataset
index), and let the model's own input pipeline convert and normalise it.  The optimiser is the
seed's: SGD with momentum 0.9 and weight decay 5e-4, a linear warm-up and a cosine decay to 0.
Training is deterministic on the CPU for a given seed and never touches the caller's global RNG
state; on CUDA it uses bfloat16 autocast and channels-last layout for convolutional networks, and
compiles large models (``TrainConfig.compile``, :mod:`harness.compilation`).
On several processes the collectives go through :mod:`harness.world`.  The accuracy cell and the
trained-model cache are :mod:`harness.run.cells.accuracy` and :mod:`harness.run.cells.model_cache`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from harness.cache import load_checkpoint, save_checkpoint
from harness.compilation import compile_setting, for_training, wants_compile
from harness.data import ImageDataset
from harness.feeding import Augmentation, DeviceFeed
from harness.keys import derive_seed, seeded
from harness.metrics import accuracy
from harness.progress import ProgressCallback, report
from harness.registry import classifiers, create_cipher, name_of
from harness.world import World, current_world

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
        compile: ``torch.compile`` the model for the training steps (with fused SGD on CUDA):
            true, false or ``auto`` (CUDA and a large model; :mod:`harness.compilation`).  Not
            part of the cache key: it changes float rounding, not what is trained.
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
    compile: bool | str = "auto"

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
        object.__setattr__(self, "compile", compile_setting(self.compile))

    def lr_for(self, cipher: Any) -> float:
        """The peak learning rate for training on ``cipher``'s ciphertexts."""
        if name_of(cipher) == "plain" or self.lr_encrypted is None:
            return float(self.lr)
        return float(self.lr_encrypted)


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
        model = build_model(cls.registry_name, train_data, cipher, options, config.seed)
    elif isinstance(classifier, nn.Module):
        model = classifier
    else:
        raise ValueError(f"classifier must be a registered name or an nn.Module, got {type(classifier).__name__}")
    train(model, train_data, cipher, config, progress, device, label=train_label(classifier, cipher))
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
            images = encrypt_batch(cipher, data.batch(index, device), index + image_id_offset, channels_last)
            outputs.append(model(images).float().cpu())
    return torch.cat(outputs)


# -- the loop and its parts -----------------------------------------------------------------
def input_shape(data: ImageDataset, cipher: Any) -> tuple[int, tuple[int, int]]:
    """Channels and size of what the network sees: the ciphertext (etc_gray's is 1 x H x 3W)."""
    _, channels, height, width = cipher.encrypted_shape((1, data.channels, *data.image_size))
    return channels, (height, width)


def build_model(name: str, data: ImageDataset, cipher: Any, options: Mapping[str, Any], seed: int) -> nn.Module:
    in_chans, image_size = input_shape(data, cipher)
    return classifiers.get(name).build(
        num_classes=len(data.classes),
        image_size=image_size,
        block_size=cipher.block_size,
        in_chans=in_chans,
        seed=derive_seed(seed, "init"),
        **options,
    )


def train(
    model: nn.Module,
    data: ImageDataset,
    cipher: Any,
    config: TrainConfig,
    progress: ProgressCallback | None,
    device: torch.device,
    label: str,
    checkpoint: Path | None = None,
    every: int | None = None,
    world: World | None = None,
) -> tuple[float, float]:
    """Train ``model`` in place; returns (the mean loss of the last epoch, training seconds).

    On several processes (``world``, by default this process's torch.distributed group; gloo on
    the CPU, NCCL on GPUs) every rank draws the same batches and augmentation, encrypts the whole
    batch and trains on its 1/size share of it under DistributedDataParallel, so the averaged
    gradient is that of the whole batch: the same training as one process up to float rounding
    (batch-norm statistics are per rank, as usual for DDP).  Only the leader writes checkpoints.

    ``checkpoint``: resumed from when it exists, saved every ``every`` optimiser steps
    (:class:`_Progress`): a resumed run takes exactly the steps of an uninterrupted one.
    """
    world = world or current_world()
    n = len(data)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = n // batch_size
    total = steps_per_epoch * config.epochs
    prepare_model(model, device)
    if batch_size % world.size:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {world.size} distributed processes")
    compiled = wants_compile(config.compile, model, device)
    trained = for_training(world.wrap(model, device), compiled)
    state = _Progress.start(model, cipher, config, steps_per_epoch, device, fused=compiled and device.type == "cuda")
    feed = DeviceFeed(data, device)
    epoch_loss = math.nan
    with seeded(derive_seed(config.seed, "layers"), device):
        if checkpoint is not None and checkpoint.exists():
            state.restore(load_checkpoint(checkpoint))
        started = time.perf_counter() - state.elapsed
        for epoch in range(state.done // steps_per_epoch, config.epochs):
            if state.done % steps_per_epoch == 0:
                state.order, state.running_sum = torch.randperm(n, generator=state.generator), 0.0
                state.augmentation = Augmentation.draw(n, config.crop_padding, state.generator) if config.augment else None
            on_device = state.augmentation.to(device) if state.augmentation is not None else None
            running = torch.zeros((), device=device)
            first = state.done % steps_per_epoch
            for step, (index, plain, labels) in enumerate(feed.epoch(state.order, batch_size, first, steps_per_epoch), start=first):
                part = on_device.part(step * batch_size, (step + 1) * batch_size) if on_device is not None else None
                running += train_step(trained, state.optimizer, cipher, plain, labels, index, config, part, (world.rank, world.size))
                state.scheduler.step()
                state.done += 1
                report(progress, state.done, total, f"{label}: epoch {epoch + 1}/{config.epochs}")
                if checkpoint is not None and every and state.done % every == 0 and state.done < total:
                    state.save(checkpoint, world, running, time.perf_counter() - started)
            epoch_loss = (state.running_sum + float(world.mean(running))) / steps_per_epoch  # one host sync per epoch
            if not math.isfinite(epoch_loss):
                raise FloatingPointError(
                    f"{label}: training diverged (loss {epoch_loss}) in epoch {epoch + 1}; lower the learning rate"
                )
    model.eval()
    return epoch_loss, time.perf_counter() - started


@dataclass
class _Progress:
    """Where a training run stands, in the one format its checkpoints are saved and restored in:
    model, optimiser, scheduler, the epoch's batch order, its augmentation and every random
    generator the loop draws from."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    device: torch.device
    done: int = 0
    order: torch.Tensor | None = None
    augmentation: Augmentation | None = None
    running_sum: float = 0.0
    elapsed: float = 0.0

    @classmethod
    def start(
        cls, model: nn.Module, cipher: Any, config: TrainConfig, steps_per_epoch: int, device: torch.device, fused: bool = False
    ) -> _Progress:
        """Step 0: the seed's optimiser (``fused``: one kernel per step) and learning-rate schedule, the batch-order generator."""
        total = steps_per_epoch * config.epochs
        optimizer = sgd(model, config, config.lr_for(cipher), fused=fused)
        warmup = round(config.warmup_epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
        return cls(model, optimizer, scheduler, torch.Generator().manual_seed(derive_seed(config.seed, "batches")), device)

    def save(self, checkpoint: Path, world: World, running: torch.Tensor, elapsed: float) -> None:
        """Every rank takes part in the mean of the epoch's running loss; the leader saves."""
        so_far = world.mean(running)
        if world.is_leader:
            save_checkpoint(checkpoint, self.capture(self.running_sum + float(so_far), elapsed))

    def capture(self, running: float, elapsed: float) -> dict[str, Any]:
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "batches_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": self.done,
            "order": self.order,
            "augmentation": None if self.augmentation is None else vars(self.augmentation),
            "running": running,
            "elapsed": elapsed,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["batches_rng"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.done, self.order = int(state["step"]), state["order"]
        self.running_sum, self.elapsed = float(state["running"]), float(state["elapsed"])
        self.augmentation = None if state["augmentation"] is None else Augmentation(**state["augmentation"])


def prepare_model(model: nn.Module, device: torch.device) -> None:
    """Move ``model`` to ``device`` in train mode (channels-last for convolutional networks on CUDA)."""
    model.to(device).train()
    if _channels_last(model, device):
        model.to(memory_format=torch.channels_last)


def sgd(model: nn.Module, config: TrainConfig, lr: float, fused: bool = False) -> torch.optim.SGD:
    """The seed's optimiser: SGD with the config's momentum, weight decay (all parameters) and Nesterov flag;
    ``fused``: the same update as one fused kernel (CUDA; ``None`` keeps torch's foreach default)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov and config.momentum > 0,
        fused=fused or None,
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

    ``index`` holds the images' dataset indices (the image ids of per-image-key ciphers, which
    derive their keys from them on the images' device); ``augmentation``: this batch's crops and flips
    (None: none); ``shard`` = (rank, world): this process trains on the rank-th of world equal
    parts of the batch.  Nothing here waits for the device.
    """
    device = plain.device
    if augmentation is not None:
        plain = augmentation.apply(plain)
    images = encrypt_batch(cipher, plain, index, _channels_last(model, device))
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


def encrypt_batch(cipher: Any, images: torch.Tensor, index: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Encrypt a uint8 batch; per-image-key ciphers get the dataset indices as image ids."""
    image_ids = index if getattr(cipher, "per_image_key", False) else None
    encrypted = cipher.encrypt(images, image_ids=image_ids)
    return encrypted.contiguous(memory_format=torch.channels_last) if channels_last else encrypted


def _channels_last(model: nn.Module, device: torch.device) -> bool:
    core = getattr(model, "module", model)  # through a DistributedDataParallel wrapper
    return device.type == "cuda" and bool(getattr(core, "prefers_channels_last", False))


def train_label(classifier: str | nn.Module, cipher: Any) -> str:
    name = classifier if isinstance(classifier, str) else type(classifier).__name__
    return f"train {name} on {name_of(cipher)}"


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
