"""fit / evaluate / run_accuracy_cell mechanics: augmentation, schedule, determinism, per-image keys, the model cache."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ciphers.base import Cipher
from harness.cache import CorruptCacheError, save_checkpoint
from harness.data import ImageDataset, resize_images
from harness.registry import create_cipher
from harness.registry import classifiers
from harness.feeding import DeviceFeed, random_crop_flip
from harness.run.cells.accuracy import run_accuracy_cell
from harness.training import TrainConfig, evaluate, fit, warmup_cosine

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = (16, 16)


def _data(n: int = 48, seed: int = 0, split: str = "train") -> ImageDataset:
    """Synthetic 3-class data: each class has its own mean colour, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    means = torch.tensor([[60, 120, 200], [200, 60, 120], [120, 200, 60]])[labels].view(n, 3, 1, 1)
    images = (means + torch.randint(-50, 50, (n, 3, *SIZE), generator=generator)).clamp(0, 255).to(torch.uint8)
    return ImageDataset(stored=images, labels=labels, classes=("a", "b", "c"), name="synthetic", split=split)


def _config(**overrides: object) -> TrainConfig:
    options = {"model_options": dict(classifiers.get("vit").small_options), "epochs": 1, "batch_size": 16, "lr": 0.05}
    return TrainConfig(**{**options, **overrides})


# -- augmentation and schedule -------------------------------------------------------------------
def test_random_crop_flip_matches_a_per_image_reference() -> None:
    images = torch.randint(0, 256, (8, 3, 6, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = random_crop_flip(images, 2, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    top = torch.randint(0, 5, (8, 1), generator=replay)[:, 0]
    left = torch.randint(0, 5, (8, 1), generator=replay)[:, 0]
    flip = torch.rand(8, 1, generator=replay)[:, 0] < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(8):
        crop = padded[i, :, top[i] : top[i] + 6, left[i] : left[i] + 5]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    assert out.dtype == torch.uint8 and flip.any() and not flip.all()


def test_random_crop_without_padding_only_flips() -> None:
    images = torch.randint(0, 256, (16, 3, 4, 4), dtype=torch.uint8)
    out = random_crop_flip(images, 0, torch.Generator().manual_seed(1))
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out, images))


def test_warmup_then_cosine_to_zero() -> None:
    assert [warmup_cosine(s, 20, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warmup_cosine(4, 20, 4) == 1.0
    assert warmup_cosine(12, 20, 4) == pytest.approx(0.5)
    assert warmup_cosine(20, 20, 4) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(5, 10, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


# -- config --------------------------------------------------------------------------------------
def test_encrypted_learning_rate_applies_to_ciphers_other_than_plain() -> None:
    config = TrainConfig(lr=0.03, lr_encrypted=0.3)
    assert config.lr_for(create_cipher("plain", SIZE)) == 0.03
    assert config.lr_for(create_cipher("proposed", SIZE, block_size=4)) == 0.3
    assert TrainConfig(lr=0.03).lr_for(create_cipher("proposed", SIZE, block_size=4)) == 0.03


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 1.5), ("lr", -1.0), ("lr_encrypted", 0.0), ("model_options", 3)])
def test_bad_config_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


# -- training ------------------------------------------------------------------------------------
def test_fit_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    data, cipher = _data(), create_cipher("proposed", SIZE, block_size=4, seed=3)
    state = torch.get_rng_state()
    options = {**classifiers.get("vit").small_options, "drop_path_rate": 0.1}  # a stochastic layer
    first = fit("vit", data, cipher, _config(model_options=options))
    assert torch.equal(state, torch.get_rng_state())
    again = fit("vit", data, cipher, _config(model_options=options))
    other = fit("vit", data, cipher, _config(seed=1, model_options=options))
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert not first.training


def test_a_dataset_resized_per_batch_trains_exactly_like_one_resized_up_front() -> None:
    small = _data()
    small = ImageDataset(stored=resize_images(small.stored, (8, 8)), labels=small.labels, classes=small.classes, name="synthetic", split="train")
    lazy = dataclasses.replace(small, size=SIZE)  # stored at 8 x 8, used at 16 x 16
    eager = dataclasses.replace(small, stored=lazy.images, size=None)
    cipher = create_cipher("proposed", SIZE, block_size=4, seed=3)
    a = fit("vit", lazy, cipher, _config(epochs=2)).state_dict()
    b = fit("vit", eager, cipher, _config(epochs=2)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_device_feed_gives_each_step_its_batch_of_the_epoch_order() -> None:
    data = _data(20)
    feed = DeviceFeed(data, torch.device("cpu"))
    order = torch.randperm(20, generator=torch.Generator().manual_seed(2))
    steps = list(feed.epoch(order, batch_size=6, first_step=1, steps=3))
    assert feed.resident and len(steps) == 2
    for step, (index, plain, labels) in enumerate(steps, start=1):
        expected = order[6 * step : 6 * step + 6]
        assert torch.equal(index, expected) and torch.equal(plain, data.images[expected]) and torch.equal(labels, data.labels[expected])


def test_a_split_copied_per_batch_gives_the_resident_splits_batches(device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    if device.type != "cuda":
        pytest.skip("the pinned side-stream copy path is CUDA's: run with --device cuda")
    data = dataclasses.replace(_data(40), size=(32, 32))
    order = torch.randperm(40, generator=torch.Generator().manual_seed(4))
    resident = list(DeviceFeed(data, device).epoch(order, 8, 0, 5))
    monkeypatch.setattr("harness.feeding.RESIDENT_SHARE", 0.0)
    streamed_feed = DeviceFeed(data, device)
    assert not streamed_feed.resident
    for (i, a, x), (j, b, y) in zip(resident, streamed_feed.epoch(order, 8, 0, 5)):
        assert torch.equal(i, j) and torch.equal(a, b) and torch.equal(x, y) and b.device.type == device.type


class _RecordingCipher(Cipher):
    """A per-image-key identity cipher that checks each image arrives with its own dataset index."""

    per_image_key = True
    channels = None

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__(1)
        self.images = images
        self.seen: list[torch.Tensor] = []

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options):
        raise NotImplementedError

    def key(self) -> dict[str, np.ndarray]:
        return {}

    def key_space(self) -> int:
        return 1

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        assert image_ids is not None and images.dtype == torch.uint8
        assert torch.equal(images, self.images[image_ids]), "image ids must be the dataset indices"
        self.seen.append(image_ids.clone())
        return images.clone()

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return ciphertexts.clone()


def test_per_image_key_ciphers_get_dataset_indices_as_image_ids() -> None:
    data = _data(40)
    cipher = _RecordingCipher(data.images)
    model = fit("vit", data, cipher, _config(augment=False, epochs=2))
    seen = torch.cat(cipher.seen)
    assert len(seen) == 2 * 32 and len(set(seen[:32].tolist())) == 32, "each epoch draws distinct images"
    cipher.seen.clear()
    evaluate(model, data, cipher, batch_size=16)
    assert torch.equal(torch.cat(cipher.seen), torch.arange(40))
    cipher.images = torch.cat([data.images, data.images])
    cipher.seen.clear()
    evaluate(model, data, cipher, batch_size=16, image_id_offset=40)
    assert torch.equal(torch.cat(cipher.seen), torch.arange(40, 80)), "test ids follow the training ids"


def test_evaluate_returns_the_accuracy_of_the_predictions() -> None:
    data = _data(30, split="test")

    class Oracle(torch.nn.Module):  # predicts the class from the mean colour, wrong on purpose for class 2
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            means = images.float().mean(dim=(2, 3))
            logits = torch.stack([means[:, 2], means[:, 0], -means.sum(1)], dim=1)
            return logits

    assert evaluate(Oracle(), data, create_cipher("plain", SIZE)) == pytest.approx(20 / 30)


# -- cache ---------------------------------------------------------------------------------------
def test_cache_hit_reuses_the_model_and_a_different_key_retrains(tmp_path: Path) -> None:
    train, test = _data(), _data(24, seed=1, split="test")
    cipher = create_cipher("proposed", SIZE, block_size=4, seed=3)
    first = run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert not first.cached and len(files) == 1 and files[0].name.startswith("vit-proposed-")
    second = run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path)
    assert second.cached and second.accuracy == first.accuracy and second.train_seconds == first.train_seconds
    other_key = create_cipher("proposed", SIZE, block_size=4, seed=4)
    third = run_accuracy_cell("vit", other_key, train, test, _config(), cache_dir=tmp_path)
    assert not third.cached and len(list(tmp_path.iterdir())) == 2
    run_accuracy_cell("vit", cipher, train, test, _config(eval_batch_size=7), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2, "the evaluation batch size does not change the model"
    compiled = run_accuracy_cell("vit", cipher, train, test, _config(compile=True), cache_dir=tmp_path)
    assert compiled.cached and compiled.accuracy == first.accuracy, "a compiled run shares the eager run's model"


def test_corrupt_cache_file_names_the_file_and_the_fix(tmp_path: Path) -> None:
    train, test = _data(), _data(24, seed=1, split="test")
    cipher = create_cipher("plain", SIZE)
    first = run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCacheError, match=rf"(?s){re.escape(path.name)}.*--refresh-cache"):
        run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path)
    save_checkpoint(path, {"state_dict": {"nothing": torch.zeros(1)}, "train_seconds": 1.0, "final_loss": 1.0})
    with pytest.raises(CorruptCacheError, match=rf"(?s){re.escape(path.name)}.*--refresh-cache"):
        run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path)
    refreshed = run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path, refresh_cache=True)
    assert not refreshed.cached and refreshed.accuracy == first.accuracy, "retraining is deterministic"
    assert run_accuracy_cell("vit", cipher, train, test, _config(), cache_dir=tmp_path).cached


def test_vit_keyed_rejects_other_ciphers() -> None:
    with pytest.raises(ValueError, match="only with the 'proposed' cipher"):
        run_accuracy_cell("vit_keyed", create_cipher("plain", SIZE), _data(), _data(), _config(), cache_dir=None)


def test_progress_reports_every_step() -> None:
    calls: list[tuple[int, int, str]] = []
    fit("vit", _data(), create_cipher("plain", SIZE), _config(epochs=2), progress=lambda *c: calls.append(c))
    assert [c[:2] for c in calls] == [(i, 6) for i in range(1, 7)]
    assert calls[-1][2] == "train vit on plain: epoch 2/2"


def test_a_cipher_that_changes_the_image_shape_gets_a_network_for_its_ciphertext(tmp_path: Path) -> None:
    """etc_gray's ciphertext is one grayscale plane of H x 3W: the network is built for that."""
    train, test = _data(), _data(24, seed=1, split="test")
    cipher = create_cipher("etc_gray", SIZE, block_size=4, seed=0)
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, model_options=dict(classifiers.get("shakedrop").small_options))
    result = run_accuracy_cell("shakedrop", cipher, train, test, config, cache_dir=tmp_path)
    assert 0.0 <= result.accuracy <= 1.0 and math.isfinite(result.extra["final_train_loss"])
    stem = next(m for m in fit("shakedrop", train, cipher, config).modules() if isinstance(m, torch.nn.Conv2d))
    assert stem.in_channels == 1
