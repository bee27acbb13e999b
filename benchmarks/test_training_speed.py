"""Training throughput: images/s of one optimiser step per (cipher, classifier) pairing of the quick preset.

One step is what ``fit`` does per batch: augment the plain uint8 batch, encrypt it, forward,
backward and SGD update.  Run with ``make benchmark`` (add ``--device cuda`` on a GPU); the
median over rounds is in ``docs/performance.md``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.registry import create_cipher
from harness.keys import derive_seed
from harness.run.config import QUICK
from harness.registry import classifiers
from harness.feeding import Augmentation
from harness.training import TrainConfig, prepare_model, sgd, train_step

PAIRS = [
    (cipher, name)
    for cipher, names in QUICK["pairings"].items()
    for name in names
    if cipher in QUICK["ciphers"] and classifiers.get(name).plain_base is None
]


def _quick_config(name: str) -> TrainConfig:
    return TrainConfig(**QUICK["classifiers"][name])


@pytest.mark.benchmark
@pytest.mark.parametrize("cipher_name, name", PAIRS, ids=[f"{c}-{n}" for c, n in PAIRS])
def test_training_step_images_per_second(benchmark, cipher_name: str, name: str, device: torch.device) -> None:
    size = tuple(QUICK["image_size"])
    cipher_options = dict(QUICK["ciphers"][cipher_name])
    cipher = create_cipher(cipher_name, size, seed=derive_seed(0, "bench", cipher_name), **cipher_options)
    config = _quick_config(name)
    cls = classifiers.get(name)
    options = cls.for_cipher(cipher, config.model_options)
    config = dataclasses.replace(config, model_options=options)
    model = cls.build(num_classes=10, image_size=size, block_size=cipher.block_size, **options)
    prepare_model(model, device)
    optimizer = sgd(model, config, config.lr_for(cipher))
    generator = torch.Generator().manual_seed(0)
    batch = config.batch_size
    plain = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
    index = torch.arange(batch)

    augmentation = Augmentation.draw(batch, config.crop_padding, generator).to(device) if config.augment else None

    def step() -> None:
        train_step(model, optimizer, cipher, plain, labels, index, config, augmentation)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(
        images_per_s=batch / benchmark.stats.stats.median,
        batch_size=batch,
        threads=torch.get_num_threads(),
        device=str(device),
        parameters=sum(p.numel() for p in model.parameters()),
    )
