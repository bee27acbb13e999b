"""Long cells: a training cell killed part-way resumes from its checkpoint and ends with exactly the
weights of an uninterrupted run; gradient accumulation gives the same step in parts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.data import load_dataset
from harness.registry import create_cipher
from harness.run.cells.accuracy import run_accuracy_cell
from harness.training import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = (16, 16)


class Preempted(Exception):
    """Stands in for a kill at a given optimiser step."""


def _cell(tmp_path: Path, config: TrainConfig, progress=None):
    train = load_dataset("natural", "train", SIZE, n=48, seed=1)
    test = load_dataset("natural", "test", SIZE, n=16, seed=1)
    cipher = create_cipher("proposed", SIZE, block_size=4, seed=2)
    return run_accuracy_cell("shakedrop", cipher, train, test, config, cache_dir=tmp_path, checkpoint_every=3, progress=progress)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    (entry,) = [p for p in folder.glob("*.pt")]
    return torch.load(entry, weights_only=True)["state_dict"]


def test_a_preempted_training_cell_resumes_to_the_same_weights(tmp_path) -> None:
    # ShakeDrop draws from torch's generator at every step and the batches are augmented: every
    # random stream has to be restored for the weights to match bit for bit
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, seed=4, model_options={"depth": 8, "alpha": 12})
    _cell(tmp_path / "whole", config)

    def kill_at_step_7(done: int, total: int, message: str) -> None:
        if done == 7:
            raise Preempted

    with pytest.raises(Preempted):
        _cell(tmp_path / "killed", config, progress=kill_at_step_7)
    partial = list((tmp_path / "killed").glob("*.partial"))
    assert len(partial) == 1 and not list((tmp_path / "killed").glob("*.pt"))
    assert torch.load(partial[0], weights_only=True)["step"] == 6
    steps: list[int] = []
    resumed = _cell(tmp_path / "killed", config, progress=lambda done, total, message: steps.append(done))
    assert steps[0] == 7 and steps[-1] == 9  # it went on from the checkpoint, not from the start
    assert not resumed.cached and not list((tmp_path / "killed").glob("*.partial"))
    whole, again = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert whole.keys() == again.keys() and all(torch.equal(whole[k], again[k]) for k in whole)


def test_gradient_accumulation_takes_the_same_step_in_parts(tmp_path) -> None:
    options = {"size": "nano", "patch_size": 4}
    base = dict(epochs=1, batch_size=16, lr=0.05, seed=3, augment=False, model_options=options)
    one = run_accuracy_cell("vit", create_cipher("plain", SIZE), load_dataset("natural", "train", SIZE, n=32, seed=1),
                            load_dataset("natural", "test", SIZE, n=8, seed=1), TrainConfig(**base), cache_dir=tmp_path / "a")
    four = run_accuracy_cell("vit", create_cipher("plain", SIZE), load_dataset("natural", "train", SIZE, n=32, seed=1),
                             load_dataset("natural", "test", SIZE, n=8, seed=1), TrainConfig(**base, accumulation_steps=4),
                             cache_dir=tmp_path / "b")
    first, second = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert max(float((first[k] - second[k]).abs().max()) for k in first) < 1e-5
    assert one.extra["final_train_loss"] == pytest.approx(four.extra["final_train_loss"], rel=1e-5)
    with pytest.raises(ValueError, match="multiple of accumulation_steps"):
        TrainConfig(batch_size=10, accumulation_steps=4)
