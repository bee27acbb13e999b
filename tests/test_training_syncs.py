"""No host round trip per training step: the loop's reads of tensor values back to Python (``.item()``,
``.cpu()``, ``.tolist()``, ``.numpy()``, ``bool``/``int``/``float`` of a tensor) do not grow with the
number of steps.  On CUDA each such read is a device sync; the CPU count is the same code path
(the throughput benchmark counts real syncs with ``torch.cuda.set_sync_debug_mode`` on a GPU)."""

from __future__ import annotations

import pytest
import torch

from harness import training
from harness.data import load_dataset
from harness.registry import create_cipher

READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


def _reads_while_training(monkeypatch: pytest.MonkeyPatch, images: int, cipher_name: str, compile: bool = False) -> int:
    data = load_dataset("natural", "train", (16, 16), n=images, seed=1)
    cipher = create_cipher(cipher_name, (16, 16), 1 if cipher_name == "pe" else 4, seed=2)
    config = training.TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=3, model_options={"width": 4}, compile=compile)
    count = 0
    with monkeypatch.context() as patch:
        for name in READS:
            real = getattr(torch.Tensor, name)

            def counting(self, *args, _real=real, **kwargs):
                nonlocal count
                count += 1
                return _real(self, *args, **kwargs)

            patch.setattr(torch.Tensor, name, counting)
        training.fit("resnet18", data, cipher, config)
    return count


@pytest.mark.parametrize("cipher_name", ["proposed", "pe"])
def test_reads_back_do_not_grow_with_the_steps(monkeypatch: pytest.MonkeyPatch, cipher_name: str) -> None:
    few = _reads_while_training(monkeypatch, 32, cipher_name)  # 2 steps an epoch
    many = _reads_while_training(monkeypatch, 128, cipher_name)  # 8 steps an epoch
    assert many == few, f"{many - few} more reads for 12 more steps: the loop reads back per step"


@pytest.mark.slow  # compiles the network for the CPU (C++ kernels): about a minute on 2 cores
def test_a_compiled_loop_reads_back_no_more_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    _reads_while_training(monkeypatch, 32, "proposed", compile=True)  # compiling reads back; a compiled step must not
    few = _reads_while_training(monkeypatch, 32, "proposed", compile=True)
    many = _reads_while_training(monkeypatch, 128, "proposed", compile=True)
    assert many == few, f"{many - few} more reads for 12 more steps: the compiled loop reads back per step"
