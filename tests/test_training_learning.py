"""Learning, not just shapes: a few epochs on a small ``natural`` subset lift accuracy well above chance (0.1).

16 x 16 crops, 500 training and 200 test images, 10 classes; a two-layer ViT with 4 x 4 patches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import ImageDataset, load_dataset
from harness.registry import create_cipher
from harness.run.cells.accuracy import run_accuracy_cell
from harness.training import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = (16, 16)
VIT = TrainConfig(epochs=6, batch_size=50, lr=0.05, warmup_epochs=1, model_options={"size": "nano", "depth": 2, "patch_size": 4})
ADAPTATION = TrainConfig(epochs=6, batch_size=50, lr=0.05, model_options={"out_chans": 4, "backbone_options": {"depth": 8, "alpha": 8}})


@pytest.fixture(scope="module")
def data() -> tuple[ImageDataset, ImageDataset]:
    return load_dataset("natural", "train", SIZE, n=500, seed=0), load_dataset("natural", "test", SIZE, n=200, seed=0)


def test_vit_learns_on_plain_and_proposed_and_vit_keyed_matches_the_plain_model_exactly(data, tmp_path: Path) -> None:
    train, test = data
    proposed = create_cipher("proposed", SIZE, block_size=4, seed=1)
    plain = run_accuracy_cell("vit", create_cipher("plain", SIZE), train, test, VIT, cache_dir=tmp_path)
    encrypted = run_accuracy_cell("vit", proposed, train, test, VIT, cache_dir=tmp_path)
    keyed = run_accuracy_cell("vit_keyed", proposed, train, test, VIT, cache_dir=tmp_path)
    assert plain.accuracy > 0.4 and encrypted.accuracy > 0.4, (plain.accuracy, encrypted.accuracy)
    assert keyed.cached, "vit_keyed must reuse the cache entry of the vit cell on plain"
    assert keyed.accuracy == plain.accuracy == keyed.extra["plain_model_accuracy"]
    assert keyed.extra["max_abs_logit_diff"] < 1e-4


@pytest.mark.parametrize("cipher", ["le", "ele"])
def test_adaptation_network_learns_on_block_ciphers(data, cipher: str) -> None:
    train, test = data
    result = run_accuracy_cell("adaptation", create_cipher(cipher, SIZE, block_size=4, seed=1), train, test, ADAPTATION, cache_dir=None)
    assert result.accuracy > 0.25, result.accuracy
