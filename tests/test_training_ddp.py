"""One training cell on several processes: DDP over gloo with 2 real processes trains the same model
as one process (equal shares of every batch, averaged gradients), up to float rounding."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from harness.data import load_dataset
from harness.registry import create_cipher
from harness.training import TrainConfig, fit

SIZE = (16, 16)
CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=5, model_options={"size": "nano", "patch_size": 4})


def _train() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    data = load_dataset("natural", "train", SIZE, n=48, seed=3)
    model = fit("vit", data, create_cipher("proposed", SIZE, block_size=4, seed=1), CONFIG)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank(rank: int, world: int, port: int, out: str) -> None:
    from harness.classifiers.base import ImageClassifier

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    seen: list[int] = []
    forward = ImageClassifier.forward

    def counting(self, images):  # records how many images each training forward of this rank sees
        seen.append(int(images.shape[0]))
        return forward(self, images)

    ImageClassifier.forward = counting
    try:
        weights = _train()
        if rank == 0:
            torch.save({"weights": weights, "seen": torch.tensor(seen)}, out)
    finally:
        ImageClassifier.forward = forward
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.usefixtures("single_thread")
def test_two_gloo_processes_train_what_one_process_trains(tmp_path) -> None:
    out = tmp_path / "ddp.pt"
    mp.spawn(_rank, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    saved, single = torch.load(out, weights_only=True), _train()
    ddp = saved["weights"]
    assert saved["seen"].tolist() == [8] * 6  # 3 steps a epoch x 2 epochs, each on half of the batch of 16
    assert ddp.keys() == single.keys()
    difference = max(float((ddp[k] - single[k]).abs().max()) for k in single)
    assert difference < 1e-4, difference  # documented tolerance (docs/performance.md): float rounding only
