"""The harness's training images/s as a ratio to a bare timm loop of the same model, batch and precision.

The harness side is :func:`harness.training.fit` on an ``nn.Module``: CIFAR-shaped images stored
at 32 x 32 on the device, resized, cropped, flipped and encrypted there every step, the
model's uint8 input pipeline, SGD with the schedule.  The bare side is what a user would write
without the harness: the same timm network, already-normalised float batches made once on the
device, autocast with the same dtype, cross-entropy, backward, SGD step.  Both run the same
number of steps in the same test, alternating, and the median of the per-round rates is
compared (goal on a GPU: >= 0.95).  Each case runs twice, like against like: the eager harness
against the eager bare loop, and the compiled harness (``TrainConfig(compile=True)``: the
training steps through ``torch.compile``, fused SGD on CUDA) against the compiled bare loop
(``torch.compile`` of the network, the same fused SGD); compiling happens in the warm-up round.
The data path alone (batch, resize, augment, encrypt) is
timed too, as a share of a harness step (goal: <= 2%), and on CUDA the host syncs a ``fit`` epoch
makes are counted (``torch.cuda.set_sync_debug_mode``; the goal is none per step).

Run: ``make benchmark`` or ``python -m pytest benchmarks/test_training_throughput.py -m benchmark
--benchmark-only [--device cuda] [--bench-tiny]``; the ``paper`` case (ViT-B/16 at 224) runs only on
CUDA; ``--bench-tiny`` (a one-block ViT, batch 16, 4 steps) checks the benchmark on a CPU, where
compiling takes a minute or two per case.
"""

from __future__ import annotations

import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from harness.data import ImageDataset
from harness.feeding import Augmentation, DeviceFeed
from harness.registry import classifiers, create_cipher
from harness.training import TrainConfig, encrypt_batch, fit

#: (name, ViT size, image side, batch, images, needs CUDA); the paper case first, so a time-bounded run has it
CASES = [
    ("paper", "base", 224, 128, 2560, True),
    ("quick", "nano", 32, 128, 1536, False),
    ("resized", "nano", 64, 64, 768, False),
]
ROUNDS = 3
#: eager against eager, compiled against compiled
MODES = ("eager", "compiled")
#: --bench-tiny: (ViT options, batch, images) instead of each case's
TINY = ({"embed_dim": 32, "depth": 1, "num_heads": 2}, 16, 64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _dataset(images: int, side: int) -> ImageDataset:
    """CIFAR-shaped data: stored at 32 x 32, used at ``side``."""
    stored = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(images) % 10
    return ImageDataset(stored=stored, labels=labels, classes=tuple("abcdefghij"), name="bench", split="train", size=(side, side))


def _harness_rate(model, data, cipher, config, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fit(model, data, cipher, config, device=device)
    _sync(device)
    return len(data) // config.batch_size * config.batch_size / (time.perf_counter() - start)


def _bare_rate(net: torch.nn.Module, config: TrainConfig, side: int, steps: int, device: torch.device) -> float:
    """The loop a user writes around the timm network (compiled or not), on batches made once on the device;
    a compiled loop uses fused SGD on CUDA, as the compiled harness does."""
    net.to(device).train()
    fused = config.compile is True and device.type == "cuda"
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused or None
    )
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(config.batch_size, 3, side, side, generator=generator).to(device)
    labels = torch.randint(0, 10, (config.batch_size,), generator=generator).to(device)
    amp = config.amp and device.type == "cuda"
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(net(inputs).float(), labels)
        loss.backward()
        optimizer.step()
    _sync(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def _data_path_seconds(data, cipher, config, device, steps: int) -> float:
    """Seconds per step of batching, resizing, augmenting and encrypting alone."""
    feed = DeviceFeed(data, device)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(2))
    augmentation = Augmentation.draw(len(data), config.crop_padding, torch.Generator().manual_seed(3)).to(device)
    _sync(device)
    start = time.perf_counter()
    for step, (index, plain, _) in enumerate(feed.epoch(order, config.batch_size, 0, steps)):
        part = augmentation.part(step * config.batch_size, (step + 1) * config.batch_size)
        encrypt_batch(cipher, part.apply(plain), index, False)
    _sync(device)
    return (time.perf_counter() - start) / steps


def _syncs_per_step(model, data, cipher, config, device, steps: int) -> float | str:
    """Host syncs CUDA reports (``set_sync_debug_mode``) in one ``fit`` epoch, per step; n/a off CUDA."""
    if device.type != "cuda":
        return "n/a"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit(model, data, cipher, config, device=device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


@pytest.mark.benchmark
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_harness_training_rate_against_a_bare_timm_loop(
    benchmark, case: tuple, mode: str, device: torch.device, bench_tiny: bool, training_table: list[dict]
) -> None:
    name, size, side, batch, images, needs_cuda = case
    if needs_cuda and device.type != "cuda":
        pytest.skip("ViT-B/16 at 224 x 224 is a GPU case: run with --device cuda")
    options = {"size": size}
    if bench_tiny:
        extra, batch, images = TINY
        options.update(extra)
    data = _dataset(images, side)
    block = 16 if side >= 128 else 4
    cipher = create_cipher("proposed", (side, side), block, seed=5)
    config = TrainConfig(epochs=1, batch_size=batch, lr=0.01, model_options=options, compile=mode == "compiled")
    cls = classifiers.get("vit")
    model = cls.build(num_classes=10, image_size=(side, side), block_size=block, **options)
    net = cls.build(num_classes=10, image_size=(side, side), block_size=block, **options).net
    net = torch.compile(net) if config.compile else net
    steps = images // batch
    _harness_rate(model, data, cipher, config, device), _bare_rate(net, config, side, 2, device)  # warm-up
    harness, bare = [], []
    for _ in range(ROUNDS):
        harness.append(_harness_rate(model, data, cipher, config, device))
        bare.append(_bare_rate(net, config, side, steps, device))
    harness_rate, bare_rate = sorted(harness)[ROUNDS // 2], sorted(bare)[ROUNDS // 2]
    data_path = benchmark.pedantic(_data_path_seconds, args=(data, cipher, config, device, steps), rounds=3, iterations=1)
    share = data_path * harness_rate / batch
    row = {
        "case": f"{name}: vit {'tiny stand-in' if bench_tiny else size}, {side}x{side}, batch {batch}", "mode": mode, "device": str(device),
        "harness img/s": harness_rate, "bare timm img/s": bare_rate, "ratio": harness_rate / bare_rate,
        "data path share of a step": share,
    }
    row["host syncs per step"] = _syncs_per_step(model, data, cipher, config, device, steps)
    benchmark.extra_info.update(row)
    training_table.append(row)
