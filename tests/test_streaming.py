"""Bounded memory: lazy image collections, per-batch resizing, and security cells that stream.

The paper's security cell (10,000 test images and 50,000 more ciphertexts at 224 x 224) cannot be
held at once; these tests check, at small sizes, that a streamed cell never asks for more than a
chunk (or an attack's capped subset) and computes exactly what the in-memory cell computes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import attacks.baselines
import harness.run.scoring as scoring
import harness.run.security as security
from attacks.base import Attack, AttackConfig, CipherFamily
from harness.cache import tensor_digest
from harness.data import load_dataset, resize_images
from harness.lazy import LazyImages
from harness.metrics import identification
from tests.cifar_folders import write_cifar10

SIZE = (16, 16)


class Recording(LazyImages):
    """A lazy collection that records the largest number of images any call asked for."""

    def __init__(self, images: torch.Tensor) -> None:
        self.largest = 0

        def produce(index: torch.Tensor) -> torch.Tensor:
            self.largest = max(self.largest, index.numel())
            return images[index]

        super().__init__(int(images.shape[0]), tuple(images.shape[1:]), produce)


@pytest.fixture(scope="module")
def splits() -> dict[str, torch.Tensor]:
    return {
        "test": load_dataset("natural", "test", SIZE, n=72, seed=3).images,
        "train": load_dataset("natural", "train", SIZE, n=120, seed=3).images,
        "attacker": load_dataset("natural", "attacker", SIZE, n=64, seed=3).images,
    }


# -- LazyImages ----------------------------------------------------------------------------------
def test_lazy_images_index_slice_chunk_and_concat_like_the_tensor() -> None:
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    lazy = LazyImages.of(images)
    assert lazy.shape == images.shape and len(lazy) == 10 and lazy.dtype == torch.uint8
    assert torch.equal(lazy[2:7], images[2:7]) and torch.equal(lazy[-3:], images[-3:])
    index = torch.tensor([9, 0, 4, -1])
    assert torch.equal(lazy[index], images[index])
    assert torch.equal(torch.cat(list(lazy.chunks(3))), images) and [c.shape[0] for c in lazy.chunks(4)] == [4, 4, 2]
    assert torch.equal(lazy.head(4).materialise(), images[:4]) and len(lazy.head(99)) == 10
    joined = LazyImages.concat([lazy.head(3), images[5:]])
    mixed = torch.tensor([7, 0, 3, 2, 6])
    assert torch.equal(joined[mixed], torch.cat([images[:3], images[5:]])[mixed])
    flipped = lazy.map(lambda batch, idx: batch.flip(-1))
    assert torch.equal(flipped[1:3], images[1:3].flip(-1))
    assert tensor_digest(lazy) == tensor_digest(images) != tensor_digest(flipped)


def test_lazy_images_refuse_bad_indices_and_bad_producers() -> None:
    lazy = LazyImages.of(torch.zeros(4, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(IndexError, match="out of range"):
        lazy[torch.tensor([4])]
    with pytest.raises(ValueError, match="step 1"):
        lazy[::2]
    with pytest.raises(TypeError, match="slice or a 1-D integer tensor"):
        lazy[1]
    with pytest.raises(TypeError, match="not a mask"):
        lazy[torch.tensor([True, False, True, False])]
    broken = LazyImages(4, (1, 2, 2), lambda index: torch.zeros(len(index), 1, 2, 2))
    with pytest.raises(RuntimeError, match="expected uint8"):
        broken[:2]
    with pytest.raises(ValueError, match="one image shape"):
        LazyImages.concat([lazy, torch.zeros(2, 1, 3, 3, dtype=torch.uint8)])


# -- per-batch resizing ----------------------------------------------------------------------------
def test_resize_matches_opencv_bicubic_within_one_and_is_reproducible() -> None:
    rows = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    ours = resize_images(torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous(), (224, 224))
    theirs = np.stack([cv2.resize(r, (224, 224), interpolation=cv2.INTER_CUBIC) for r in rows])
    difference = np.abs(ours.permute(0, 2, 3, 1).numpy().astype(int) - theirs.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    mixed = resize_images(torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous(), (16, 48))  # one side grows: bicubic
    reference = np.stack([cv2.resize(r, (48, 16), interpolation=cv2.INTER_CUBIC) for r in rows])
    assert np.abs(mixed.permute(0, 2, 3, 1).numpy().astype(int) - reference.astype(int)).max() <= 1
    again = resize_images(torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous(), (224, 224))
    assert torch.equal(ours, again) and ours.dtype == torch.uint8
    blocks = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.equal(resize_images(blocks, (2, 2)), torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2))  # area mean


def test_cifar_stays_at_its_stored_size_and_is_resized_per_batch(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=6)
    data = load_dataset("cifar10", "test", (64, 64), data_dir=tmp_path)
    assert data.stored.shape == (6, 3, 32, 32) and data.image_size == (64, 64)
    whole = data.images
    assert whole.shape == (6, 3, 64, 64) and torch.equal(whole, resize_images(data.stored, (64, 64)))
    assert torch.equal(data.batch(torch.tensor([4, 1])), whole[[4, 1]])
    assert torch.equal(data.lazy()[2:5], whole[2:5])
    native = load_dataset("cifar10", "test", (32, 32), data_dir=tmp_path)
    assert native.images is native.stored  # no resize is due: no copy


# -- streamed security cells -----------------------------------------------------------------------
STREAMED = [
    ("none", "proposed", {}),
    ("mean_image", "proposed", {}),
    ("mean_colour", "etc_gray", {}),
    ("kpa", "proposed", {}),
    ("puzzle", "proposed", {"params": {"max_ciphertexts": 40}}),
    ("nibble", "le", {"params": {"max_ciphertexts": 40, "chunk": 16}}),
    ("extended_jigsaw", "etc", {"params": {"max_ciphertexts": 40, "prior_images": 40}}),
    ("itn", "proposed", {"epochs": 1, "width": 8}),
    ("gan", "proposed", {"steps": 2, "width": 8}),
]


@pytest.mark.parametrize("attack, cipher, options", STREAMED, ids=[a for a, _, _ in STREAMED])
def test_a_streamed_security_cell_asks_for_a_chunk_at_a_time_and_equals_the_in_memory_cell(
    attack: str, cipher: str, options: dict, splits, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk = 16
    monkeypatch.setattr(scoring, "STREAM_VALUES", chunk * 3 * SIZE[0] * SIZE[1])
    monkeypatch.setattr(attacks.baselines, "MEAN_CHUNK", chunk)
    monkeypatch.setattr("harness.lazy.DEFAULT_CHUNK", chunk)
    family = CipherFamily(cipher, SIZE, 4)
    victim_cipher = family.draw(21)
    config = AttackConfig(known_pairs=8, batch_size=chunk, **options)
    lazies = {name: Recording(images) for name, images in splits.items()}
    arguments = dict(cache_dir=None, ladder=(20,), keep_restored=5)
    streamed = security.run_security_cell(
        attack, family, victim_cipher, lazies["test"], lazies["attacker"], config, pool_images=lazies["train"], **arguments
    )
    in_memory = security.run_security_cell(
        attack, family, victim_cipher, splits["test"], splits["attacker"], config, pool_images=splits["train"], **arguments
    )
    bound = max(chunk, config.known_pairs, config.batch_size, config.params.get("max_ciphertexts", 0))
    for name, lazy in lazies.items():
        assert lazy.largest <= bound < len(lazy), f"{attack} asked for {lazy.largest} of the {len(lazy)} {name} images at once"
    assert torch.equal(streamed.ssim, in_memory.ssim) and torch.equal(streamed.psnr, in_memory.psnr)
    assert torch.equal(streamed.identified, in_memory.identified) and streamed.curve == in_memory.curve
    assert streamed.restored.shape[0] == 5 and torch.equal(streamed.restored, in_memory.restored)


def test_streamed_identification_equals_identification_of_the_whole_split(splits) -> None:
    family = CipherFamily("proposed", SIZE, 4)
    cipher = family.draw(5)
    result = security.run_security_cell("kpa", family, cipher, splits["test"], splits["attacker"], AttackConfig(known_pairs=8), cache_dir=None)
    evaluated = splits["test"][:64]
    assert torch.equal(result.identified, identification(result.restored, evaluated))


class _TensorOnly(Attack):
    """A plugin-style attack that does not declare ``streams``: it may use any tensor method."""

    registry_name = "tensor_only"

    def _fit(self, attacker_images, config, progress, *, victim, pairs) -> None:
        assert isinstance(attacker_images, torch.Tensor) and isinstance(victim, torch.Tensor)
        self.mean = attacker_images.float().mean(0).round().to(torch.uint8)

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        return self.mean.expand(ciphertexts.shape[0], -1, -1, -1).clone()


def test_an_attack_that_does_not_stream_gets_whole_tensors(splits) -> None:
    family = CipherFamily("proposed", SIZE, 4)
    attack = _TensorOnly()
    attack.fit(LazyImages.of(splits["attacker"]), family, AttackConfig(), victim_ciphertexts=LazyImages.of(splits["test"]))
    assert torch.equal(attack.mean, splits["attacker"].float().mean(0).round().to(torch.uint8))


def test_security_cells_resize_where_they_score(tmp_path, monkeypatch, device) -> None:
    """The device-resident security path: every split a security cell reads is resized and encrypted
    on the cell's device (today's main resized on the host and then copied), a batch at a time.
    CIFAR is stored at 32 x 32 and used at 64 x 64, so every image a cell reads goes through a resize."""
    import harness.data
    from harness.data import ImageDataset
    from harness.run import Cell, CellContext, compute_cell, resolve_config

    write_cifar10(tmp_path / "data", per_batch=24)
    config = resolve_config("quick", None, {"datasets": ["cifar10"], "data_dir": str(tmp_path / "data")})
    config.update({"n_train": 30, "n_test": 20, "n_attacker": 20, "image_size": [64, 64], "known_pairs": 4})
    asked: list[object] = []
    resized_on: list[torch.device] = []
    real_lazy, real_resize = ImageDataset.lazy, harness.data.resize_images

    def lazy(self, device=None):
        asked.append(device)
        return real_lazy(self, device)

    def resize(images, size):
        resized_on.append(images.device)
        return real_resize(images, size)

    monkeypatch.setattr(ImageDataset, "lazy", lazy)
    monkeypatch.setattr(harness.data, "resize_images", resize)
    monkeypatch.setattr(ImageDataset, "images", property(lambda self: pytest.fail("a split was resized whole, on the host")))
    compute_cell(Cell("security", "cifar10", "proposed", attack="puzzle"), CellContext(config, tmp_path / "run", device=str(device)))
    assert asked and all(torch.device(d).type == device.type for d in asked), asked
    assert resized_on and all(d.type == device.type for d in resized_on), resized_on
