"""``shakedrop``: PyramidNet with ShakeDrop regularisation (Han et al. 2017; Yamada et al. 2019).

The seed's LE, EtC and ELE rows use PyramidNet-110 (alpha = 270) with ShakeDrop, as in Madono et
al. 2020.  Each residual unit is BN-conv3x3-BN-ReLU-conv3x3-BN, scaled by ShakeDrop; the shortcut
is the identity (average-pooled when the unit downsamples), zero-padded to the wider channel
count.  Unit widths grow linearly by ``alpha`` over the whole network, and unit ``i`` of ``L``
drops with probability ``0.5 * (i + 1) / L``.

ShakeDrop draws its gate and coefficients per sample (the paper's image-level variant; Madono's
code draws one gate per batch, which we do not copy).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.classifiers.base import Classifier
from harness.registry import classifiers


class ShakeDropFunction(torch.autograd.Function):
    """Forward scales by ``gate + alpha (1 - gate)``; backward scales the gradient by ``gate + beta (1 - gate)``.

    The backward rule is deliberately not the derivative of the forward one: a dropped unit
    (gate 0) passes ``alpha * x`` forward but ``beta * grad`` back, with independent random
    ``alpha`` and ``beta`` (Yamada et al. 2019, eq. 3).  ``gate``, ``alpha`` and ``beta`` are
    inputs so the rule can be tested exactly.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, gate: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, beta)
        return x * (gate + alpha * (1 - gate))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        gate, beta = ctx.saved_tensors
        return grad * (gate + beta * (1 - gate)), None, None, None


class ShakeDrop(nn.Module):
    """ShakeDrop on a residual branch: random per-sample scaling in training, its mean in evaluation."""

    def __init__(
        self, p_drop: float, alpha_range: tuple[float, float] = (-1.0, 1.0), beta_range: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        super().__init__()
        if not 0.0 <= p_drop <= 1.0:
            raise ValueError(f"p_drop must lie in [0, 1], got {p_drop}")
        self.p_drop = p_drop
        self.alpha_range = alpha_range
        self.beta_range = beta_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.alpha_range
        if not self.training:
            return x * ((1 - self.p_drop) + self.p_drop * (lo + hi) / 2)
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        gate = (torch.rand(shape, device=x.device, dtype=x.dtype) >= self.p_drop).to(x.dtype)
        alpha = torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(lo, hi)
        beta = torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(*self.beta_range)
        return ShakeDropFunction.apply(x, gate, alpha, beta)

    def extra_repr(self) -> str:
        return f"p_drop={self.p_drop:.4f}"


class PyramidUnit(nn.Module):
    """One basic PyramidNet unit with a ShakeDrop branch and a zero-padded shortcut."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, p_drop: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.BatchNorm2d(in_chans),
            nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chans),
        )
        self.shake = ShakeDrop(p_drop)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride > 1 else nn.Identity()
        self.extra = out_chans - in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.pool(x)
        if self.extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return self.shake(self.branch(x)) + shortcut


class PyramidNet(nn.Module):
    """PyramidNet for small images: stem conv3x3, 3 stages (strides 1, 2, 2), BN-ReLU-pool-linear head."""

    def __init__(
        self, *, depth: int, alpha: float, num_classes: int, in_chans: int, stem_width: int, p_drop_max: float
    ) -> None:
        super().__init__()
        units_per_stage = (depth - 2) // 6
        total = 3 * units_per_stage
        widths = [stem_width + int(alpha * (i + 1) / total) for i in range(total)]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_width, 3, padding=1, bias=False), nn.BatchNorm2d(stem_width))
        units, previous = [], stem_width
        for i, width in enumerate(widths):
            stride = 2 if i > 0 and i % units_per_stage == 0 else 1
            units.append(PyramidUnit(previous, width, stride, p_drop_max * (i + 1) / total))
            previous = width
        self.units = nn.Sequential(*units)
        self.head = nn.Sequential(
            nn.BatchNorm2d(previous),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(previous, num_classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.units(self.stem(x)))


@classifiers.register("shakedrop")
class ShakeDropClassifier(Classifier):
    """PyramidNet + ShakeDrop; the seed's setting is ``depth=110, alpha=270``."""

    prefers_channels_last = True
    small_options = {"depth": 8, "alpha": 8}
    options = {
        "depth": 110,  # 6n + 2 (n basic units per stage)
        "alpha": 270,  # total widening over the network
        "stem_width": 16,
        "p_drop_max": 0.5,  # drop probability of the last unit
    }

    @classmethod
    def resolve_options(cls, *, image_size: tuple[int, int], block_size: int, **options: Any) -> dict[str, Any]:
        resolved = super().resolve_options(image_size=image_size, block_size=block_size, **options)
        depth = resolved["depth"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, ..., 110), got {depth!r}")
        if resolved["alpha"] < 0 or resolved["stem_width"] < 1:
            raise ValueError("alpha must be >= 0 and stem_width >= 1")
        if not 0.0 <= resolved["p_drop_max"] <= 1.0:
            raise ValueError(f"p_drop_max must lie in [0, 1], got {resolved['p_drop_max']}")
        return resolved

    @classmethod
    def build_network(
        cls, *, num_classes: int, image_size: tuple[int, int], block_size: int, in_chans: int, **options: Any
    ) -> nn.Module:
        return PyramidNet(num_classes=num_classes, in_chans=in_chans, **options)
