"""``TrainConfig.compile``: the ``auto`` rule, and a compiled training that trains what the eager one does."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from harness.compilation import AUTO_MIN_PARAMETERS, wants_compile
from harness.data import ImageDataset
from harness.registry import classifiers, create_cipher
from harness.training import TrainConfig, build_model, train

pytestmark = pytest.mark.usefixtures("single_thread")


def test_auto_compiles_large_models_on_cuda_only() -> None:
    large = nn.Linear(AUTO_MIN_PARAMETERS // 1000, 1000, device="meta")  # no memory: only the count matters
    small = nn.Linear(10, 10)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert wants_compile("auto", large, cuda) and not wants_compile("auto", small, cuda)
    assert not wants_compile("auto", large, cpu)
    assert wants_compile(True, small, cpu) and not wants_compile(False, large, cuda)


def test_compile_settings_are_checked() -> None:
    assert TrainConfig(compile="On").compile is True and TrainConfig().compile == "auto"
    with pytest.raises(ValueError, match="compile must be true, false or auto, got 'fast'"):
        TrainConfig(compile="fast")


@pytest.mark.slow  # inductor compiles C++ kernels for the CPU: about a minute on 2 cores
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("gcc") is None, reason="torch.compile on the CPU needs a C++ compiler")
def test_a_compiled_training_follows_the_eager_one() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(32) % 3
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=generator)
    data = ImageDataset(stored=images, labels=labels, classes=("a", "b", "c"), name="synthetic", split="train")
    cipher = create_cipher("proposed", (16, 16), block_size=4, seed=3)
    options = dict(classifiers.get("vit").small_options)
    states, losses = [], []
    graphs = counters["stats"]["unique_graphs"]
    for compiled in (False, True):
        config = TrainConfig(epochs=2, batch_size=16, lr=0.05, model_options=options, compile=compiled)
        model = build_model("vit", data, cipher, options, config.seed)
        loss, _ = train(model, data, cipher, config, None, torch.device("cpu"), "compile test")
        states.append(model.state_dict())
        losses.append(loss)
    assert counters["stats"]["unique_graphs"] > graphs, "the compiled run did not compile"
    assert set(states[0]) == set(states[1]), "the compiled model keeps its state-dict keys"
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for name, eager in states[0].items():
        torch.testing.assert_close(states[1][name], eager, rtol=1e-4, atol=1e-5, msg=f"{name} after 4 steps")
