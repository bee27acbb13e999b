"""``adaptation``: a block-wise adaptation network in front of a backbone, for block ciphers (LE, ELE).

The adaptation layers look at one M x M block at a time (kernel = stride = M), so they can learn
to undo a block-wise transform, then a pixel shuffle puts the features back in image layout for
an ordinary backbone (Tanaka 2018).  For LE, whose key is the same for every block, one shared
block transform suffices; for ELE, whose key differs per block position, each position gets its
own weights and a learnable N x N block-mixing matrix can learn to undo the block scrambling
(Madono et al. 2020).  The mixing matrix starts at the identity and is pushed towards a
permutation by the doubly stochastic constraint (DSC), sum over rows and columns of
``|w|_1 - |w|_2``, which the network reports as its auxiliary loss.

Not copied from Madono's code: its spectral normalisation, its total-variation term and its
unused layers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.classifiers.base import Classifier
from harness.registry import classifiers


class BlockAdaptation(nn.Module):
    """Block-aligned embedding (shared or per position) -> BN -> LeakyReLU -> optional block mixing -> pixel shuffle."""

    def __init__(
        self, *, in_chans: int, block_size: int, grid: tuple[int, int], out_chans: int, per_position: bool, mix_blocks: bool
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.grid = grid
        self.hidden = out_chans * block_size * block_size
        n_blocks = grid[0] * grid[1]
        if per_position:
            fan_in = in_chans * block_size * block_size
            bound = 1.0 / fan_in**0.5
            self.position_weight = nn.Parameter(torch.empty(n_blocks, self.hidden, fan_in).uniform_(-bound, bound))
            self.norm: nn.Module = nn.BatchNorm1d(n_blocks * self.hidden)
        else:
            self.embed = nn.Conv2d(in_chans, self.hidden, block_size, stride=block_size, bias=False)
            self.norm = nn.BatchNorm2d(self.hidden)
        self.per_position = per_position
        self.mix = nn.Parameter(torch.eye(n_blocks)) if mix_blocks else None
        self.act = nn.LeakyReLU(0.1)
        self.shuffle = nn.PixelShuffle(block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if self.per_position:
            patches = F.unfold(x, self.block_size, stride=self.block_size)  # [B, C*M*M, N], (c, row, col) order
            feats = torch.einsum("bdn,nhd->bnh", patches, self.position_weight).reshape(batch, -1)
            feats = self.norm(feats).view(batch, -1, self.hidden).transpose(1, 2)  # [B, hidden, N]
        else:
            feats = self.norm(self.embed(x)).flatten(2)
        feats = self.act(feats)
        if self.mix is not None:
            feats = feats @ self.mix  # out position j = sum_i in position i * W[i, j]
        return self.shuffle(feats.reshape(batch, self.hidden, *self.grid))


class AdaptationNetwork(nn.Module):
    """Adaptation layers, then the backbone; the DSC term is exposed as ``auxiliary_loss``."""

    def __init__(self, adapt: BlockAdaptation, backbone: nn.Module, dsc_weight: float) -> None:
        super().__init__()
        self.adapt = adapt
        self.backbone = backbone
        self.dsc_weight = dsc_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapt(x))

    def auxiliary_loss(self) -> torch.Tensor | None:
        if self.adapt.mix is None or self.dsc_weight == 0:
            return None
        return self.dsc_weight * doubly_stochastic_penalty(self.adapt.mix)


def doubly_stochastic_penalty(weight: torch.Tensor) -> torch.Tensor:
    """Sum over rows and columns of ``|w|_1 - |w|_2``: zero exactly for (signed) permutation matrices."""
    absolute = weight.abs()
    return (absolute.sum(0) - weight.norm(dim=0)).sum() + (absolute.sum(1) - weight.norm(dim=1)).sum()


@classifiers.register("adaptation")
class AdaptationClassifier(Classifier):
    """Block-wise adaptation network + a registered backbone (default ``shakedrop``)."""

    prefers_channels_last = True
    small_options = {"out_chans": 4, "backbone_options": {"depth": 8, "alpha": 8}}
    options = {
        "backbone": "shakedrop",
        "backbone_options": {},  # options of the backbone classifier (resolved and stored in full)
        "per_position": None,  # None: True for per-position ciphers (ELE, EtC), else False (LE)
        "out_chans": 16,  # channels after the pixel shuffle (the backbone's input channels)
        "mix_blocks": None,  # None: same as per_position
        "dsc_weight": None,  # None: 1e-3 / N^2 (Madono's 1e-3 / 4096 at N = 64 blocks)
    }

    @classmethod
    def for_cipher(cls, cipher: Any, options: dict[str, Any]) -> dict[str, Any]:
        adjusted = dict(options)
        if adjusted.get("per_position") is None:
            # a block transform keyed per block position (ELE, EtC) gets per-position weights
            adjusted["per_position"] = bool(getattr(cipher, "traits", None) and cipher.traits.per_position_key)
        return adjusted

    @classmethod
    def resolve_options(cls, *, image_size: tuple[int, int], block_size: int, **options: Any) -> dict[str, Any]:
        resolved = super().resolve_options(image_size=image_size, block_size=block_size, **options)
        backbone = classifiers.get(resolved["backbone"])
        if backbone is cls or backbone.plain_base is not None:
            raise ValueError(f"backbone must be a classifier trained on images, got {resolved['backbone']!r}")
        if not isinstance(resolved["backbone_options"], dict):
            raise ValueError(f"backbone_options must be a dict, got {type(resolved['backbone_options']).__name__}")
        resolved["backbone_options"] = backbone.resolve_options(
            image_size=image_size, block_size=block_size, **resolved["backbone_options"]
        )
        resolved["per_position"] = bool(resolved["per_position"])
        if resolved["mix_blocks"] is None:
            resolved["mix_blocks"] = resolved["per_position"]
        if resolved["dsc_weight"] is None:
            n_blocks = (image_size[0] // block_size) * (image_size[1] // block_size)
            resolved["dsc_weight"] = 1e-3 / n_blocks**2
        out_chans = resolved["out_chans"]
        if isinstance(out_chans, bool) or not isinstance(out_chans, int) or out_chans < 1:
            raise ValueError(f"out_chans must be a positive integer, got {out_chans!r}")
        return resolved

    @classmethod
    def build_network(
        cls, *, num_classes: int, image_size: tuple[int, int], block_size: int, in_chans: int, **options: Any
    ) -> nn.Module:
        grid = (image_size[0] // block_size, image_size[1] // block_size)
        adapt = BlockAdaptation(
            in_chans=in_chans,
            block_size=block_size,
            grid=grid,
            out_chans=options["out_chans"],
            per_position=options["per_position"],
            mix_blocks=options["mix_blocks"],
        )
        backbone = classifiers.get(options["backbone"]).build_network(
            num_classes=num_classes,
            image_size=image_size,
            block_size=block_size,
            in_chans=options["out_chans"],
            **options["backbone_options"],
        )
        return AdaptationNetwork(adapt, backbone, options["dsc_weight"])
