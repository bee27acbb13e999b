"""Training helpers shared by the learned attacks (seeding, batching, losses, inference)."""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from attacks._nets import build_generator, tanh_to_image, to_image, to_input
from attacks.base import Attack, AttackConfig
from harness.keys import derive_seed, seeded

#: images per forward pass when restoring (bounds memory, not results)
INFERENCE_BATCH = 256


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches over ``range(n)``; a last batch of one is dropped (BatchNorm needs two)."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        chunk = order[start : start + batch_size]
        if chunk.numel() > 1 or n == 1:
            yield chunk


def adam(parameters, config: AttackConfig, lr: float | None = None) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=lr or config.lr, betas=config.betas, weight_decay=config.weight_decay)


def image_loss(prediction: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """L1 or MSE between images in [0, 1]."""
    if loss == "l1":
        return (prediction - target).abs().mean()
    return (prediction - target).pow(2).mean()


def generate(net: nn.Module, ciphertexts: torch.Tensor, output: str = "logits") -> torch.Tensor:
    """Run a generator in eval mode over uint8 ciphertexts, in batches: uint8 images.

    ``output``: ``"logits"`` (sigmoid to [0, 1]) or ``"tanh"`` (the net ends in tanh; x 0.5 + 0.5).
    """
    convert = tanh_to_image if output == "tanh" else to_image
    net.eval()
    with torch.no_grad():
        return torch.cat([convert(net(to_input(chunk))) for chunk in ciphertexts.split(INFERENCE_BATCH)])


def index_stream(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of ``min(batch_size, n)`` indices into ``range(n)``: consecutive shuffled
    passes, cut into equal batches (a batch may span the end of one pass and the start of the next)."""
    size = min(batch_size, n)
    pending = torch.empty(0, dtype=torch.long)
    while True:
        while pending.numel() < size:
            pending = torch.cat([pending, torch.randperm(n, generator=generator)])
        yield pending[:size]
        pending = pending[size:]


class GeneratorAttack(Attack):
    """A learned attack whose restoration is one generator network (``itn``, ``gan``)."""

    streams = True
    learned = True

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed=seed, device=device)
        self.net: nn.Module | None = None
        self.arch: dict[str, object] = {}

    def build_net(self, config: AttackConfig) -> nn.Module:
        """A freshly initialised generator for the fitted family, seeded by the attack's seed."""
        assert self.family is not None and self.channels is not None
        self.arch = {
            "arch": config.arch,
            "channels": self.channels,
            "block": self.family.resolved_block_size,
            "image_size": list(self.family.image_size),
            "width": config.width,
            "unet_depth": config.unet_depth,
        }
        with seeded(derive_seed(self.seed, self.registry_name, "generator"), self.device):
            self.net = self._build().to(self.device)
        return self.net

    def arch_name(self) -> str:
        """The architecture actually used (``auto`` resolved)."""
        arch, block = str(self.arch["arch"]), int(self.arch["block"])
        return ("block" if block > 1 else "pixel") if arch == "auto" else arch

    def _build(self) -> nn.Module:
        a = self.arch
        size = (int(a["image_size"][0]), int(a["image_size"][1]))
        return build_generator(str(a["arch"]), int(a["channels"]), int(a["block"]), size, int(a["width"]), int(a["unet_depth"]))

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        return generate(self.net, ciphertexts)

    def _state(self) -> dict[str, object]:
        assert self.net is not None
        return {"arch": dict(self.arch), "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}

    def _load_state(self, state) -> None:
        self.arch = dict(state["arch"])
        self.net = self._build().to(self.device)
        self.net.load_state_dict(state["net"])
