"""Scoring up to the symmetries that keep an image's content.

A restoration that is the plain image mirrored, rotated, transposed, negated (``255 - x``) or with
its colour channels in another order reveals everything a person needs: a mirrored face is a
revealed face.  Raw SSIM calls such a restoration a failure (an exact left-right mirror of a
photograph scores about 0.1), so security cells also score every attack, baselines included, up
to this group: the 8 dihedral transforms (only the 4 that keep the shape of a non-square image)
x negation x the orders of the colour channels, 96 transforms for square RGB images.

One transform is chosen per cell (per cipher, attack and key): the one whose mean SSIM over the
evaluated images is highest (over the first :func:`selection_images` of them when there are more:
the scan costs about 14 SSIM passes, too much for 10,000 images at 224 x 224); SSIM, PSNR and
identification are then computed under it for every image.  Choosing one transform for all
images, not one per image, keeps the inflation of a content-free guess small (docs/benchmark.md
gives the measured figures).

The scan is cheap: SSIM's local statistics are computed once per geometry and per pair of
(restored, plain) channels, and negation only flips a mean and a covariance's sign, so all 96
transforms cost about 14 plain SSIM evaluations instead of 96.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.metrics import DATA_RANGE, METRIC_VALUES, metric_dtype

#: geometry g: rotate g % 4 quarter turns counter-clockwise in the (H, W) plane, then mirror W if g >= 4
GEOMETRY_NAMES = ("upright", "rotated 90°", "rotated 180°", "rotated 270°",
                  "mirrored", "rotated 90° and mirrored", "rotated 180° and mirrored", "rotated 270° and mirrored")
_WIN = 7
#: values of the evaluated images the transform is chosen on: 256 images of 32 x 32 ...
SELECTION_VALUES = 256 * 3 * 32 * 32
#: ... but never fewer than this many images (32 at 224 x 224)
MIN_SELECTION_IMAGES = 32


def selection_images(image_shape: tuple[int, ...]) -> int:
    """How many of the first evaluated images the transform is chosen on."""
    return max(MIN_SELECTION_IMAGES, SELECTION_VALUES // math.prod(image_shape))
_C1, _C2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2


def apply_geometry(images: torch.Tensor, geometry: int) -> torch.Tensor:
    """``images`` ``[..., H, W]`` under geometry ``geometry`` (0..7, SPEC's EtC coding)."""
    out = torch.rot90(images, geometry % 4, dims=(-2, -1))
    return out.flip(-1) if geometry >= 4 else out


@dataclass(frozen=True)
class Symmetry:
    """One content-keeping transform: a geometry, then a channel order, then (optionally) negation.

    ``channel_order[j]`` is the restored channel that becomes channel j (``None``: unchanged).
    """

    geometry: int = 0
    negate: bool = False
    channel_order: tuple[int, ...] | None = None

    @property
    def is_identity(self) -> bool:
        order = self.channel_order
        return self.geometry == 0 and not self.negate and (order is None or list(order) == sorted(order))

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` under this transform."""
        out = apply_geometry(images, self.geometry)
        if self.channel_order is not None:
            out = out[:, list(self.channel_order)]
        return 255 - out if self.negate else out.contiguous()

    @property
    def label(self) -> str:
        """A short description for reports (``upright`` for the identity)."""
        parts = [GEOMETRY_NAMES[self.geometry]] if self.geometry else []
        order = self.channel_order
        if order is not None and list(order) != sorted(order):
            parts.append("channels " + "".join("RGB"[c] if len(order) == 3 else str(c) for c in order))
        if self.negate:
            parts.append("negated")
        return ", ".join(parts) or "upright"


def symmetry_group(channels: int, height: int, width: int) -> list[Symmetry]:
    """The transforms that keep a ``[channels, height, width]`` image's shape; the identity first."""
    geometries = range(8) if height == width else (0, 2, 4, 6)
    orders = list(itertools.permutations(range(channels)))
    return [Symmetry(g, bool(n), order) for g in geometries for n in (0, 1) for order in orders]


class SymmetryScores:
    """Per-image SSIM and PSNR of restorations under every transform of the group, streamed by chunks.

    :meth:`add` takes one chunk of (restored, plain) pairs; the scores of any transform are then
    combinations of the stored per-channel-pair statistics (``[images, geometry, negation, C, C]``).
    """

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.group = symmetry_group(channels, height, width)
        self.geometries = sorted({s.geometry for s in self.group})
        self.pixels = channels * height * width
        self._ssim: list[torch.Tensor] = []
        self._sse: list[torch.Tensor] = []

    def add(self, restored: torch.Tensor, plain: torch.Tensor) -> None:
        if restored.shape != plain.shape or restored.dtype != torch.uint8 or plain.dtype != torch.uint8:
            raise ValueError(f"restored and plain must be uint8 batches of one shape, got {tuple(restored.shape)} and {tuple(plain.shape)}")
        channels, height, width = plain.shape[1:]
        if channels * height * width != self.pixels:
            raise ValueError(f"images of {tuple(plain.shape[1:])} do not match this group's image size")
        chunk = max(1, METRIC_VALUES // (channels * channels * height * width))
        for x, y in zip(restored.split(chunk), plain.split(chunk)):
            ssim, sse = _pair_statistics(x, y, self.geometries)
            self._ssim.append(ssim.cpu())
            self._sse.append(sse.cpu())

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._ssim:
            raise ValueError("no images were added")
        return torch.cat(self._ssim), torch.cat(self._sse)

    def scores(self, symmetry: Symmetry) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image SSIM and PSNR (dB, ``inf`` where exact) of the restorations under ``symmetry``."""
        ssim, sse = self._stacked()
        g = self.geometries.index(symmetry.geometry)
        channels = ssim.shape[-1]
        order = torch.tensor(symmetry.channel_order if symmetry.channel_order is not None else range(channels))
        target = torch.arange(channels)
        pick_ssim = ssim[:, g, int(symmetry.negate)][:, order, target].mean(1)
        pick_sse = sse[:, g, int(symmetry.negate)][:, order, target].sum(1)
        mse = pick_sse.double() / self.pixels
        return pick_ssim, 10 * torch.log10(DATA_RANGE**2 / mse)

    def mean_ssim(self) -> torch.Tensor:
        """Mean SSIM over the images for every transform of :attr:`group` (same order)."""
        return torch.stack([self.scores(s)[0].mean() for s in self.group])

    def best(self) -> Symmetry:
        """The transform with the highest mean SSIM (the earliest on ties: the identity wins ties)."""
        means = self.mean_ssim()
        return self.group[int(torch.argmax(means))]


def _local_mean(t: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(t, _WIN, stride=1)


def _pair_statistics(x: torch.Tensor, y: torch.Tensor, geometries: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ssim, sse)``, each ``[B, geometries, 2, C, C]``: mean SSIM and summed squared error of
    restored channel i under each geometry (and negated) against plain channel j."""
    dtype = metric_dtype(x.device)
    batch, channels, height, width = y.shape
    cov_norm = _WIN * _WIN / (_WIN * _WIN - 1)
    yf = y.to(dtype)
    uy = _local_mean(yf)
    vy = cov_norm * (_local_mean(yf * yf) - uy * uy)
    exact = torch.float64  # sums of squared byte differences are exact in float64
    y64 = y.to(exact).flatten(2)
    ssims, sses = [], []
    for geometry in geometries:
        xg = apply_geometry(x, geometry)
        xf = xg.to(dtype)
        ux = _local_mean(xf)
        vx = cov_norm * (_local_mean(xf * xf) - ux * ux)
        products = (xf.unsqueeze(2) * yf.unsqueeze(1)).reshape(batch, channels * channels, height, width)
        cross = cov_norm * (_local_mean(products).view(batch, channels, channels, *uy.shape[-2:])
                            - ux.unsqueeze(2) * uy.unsqueeze(1))
        ui, uj = ux.unsqueeze(2), uy.unsqueeze(1)
        variances = vx.unsqueeze(2) + vy.unsqueeze(1) + _C2
        positive = ((2 * ui * uj + _C1) * (2 * cross + _C2)) / ((ui * ui + uj * uj + _C1) * variances)
        flipped = DATA_RANGE - ui
        negative = ((2 * flipped * uj + _C1) * (_C2 - 2 * cross)) / ((flipped * flipped + uj * uj + _C1) * variances)
        ssims.append(torch.stack([positive.mean((-2, -1)), negative.mean((-2, -1))], dim=1))
        x64 = xg.to(exact).flatten(2)
        xy = torch.einsum("bip,bjp->bij", x64, y64)
        xx, yy, xs, ys = (x64 * x64).sum(-1), (y64 * y64).sum(-1), x64.sum(-1), y64.sum(-1)
        pixels = x64.shape[-1]
        sse_pos = xx.unsqueeze(2) - 2 * xy + yy.unsqueeze(1)
        # (255 - x - y)^2 summed: 255^2 n - 510 (sx + sy) + xx + yy + 2 xy
        sse_neg = DATA_RANGE**2 * pixels - 2 * DATA_RANGE * (xs.unsqueeze(2) + ys.unsqueeze(1)) + xx.unsqueeze(2) + yy.unsqueeze(1) + 2 * xy
        sses.append(torch.stack([sse_pos, sse_neg], dim=1).round().to(torch.int64))
    return torch.stack(ssims, dim=1).to(torch.float64), torch.stack(sses, dim=1)


def transform_features(features: torch.Tensor, symmetry: Symmetry, grid: tuple[int, int]) -> torch.Tensor:
    """Identification features (:func:`harness.metrics.identity_features`, a ``grid`` of grayscale
    values flattened) of the images under ``symmetry``: the geometry moves the grid, negation flips
    the sign, the channel order changes nothing (grayscale is their mean).  Exact when the image's
    sides are multiples of the grid's (area averaging then commutes with the geometry)."""
    shaped = features.view(features.shape[0], *grid)
    moved = apply_geometry(shaped, symmetry.geometry).reshape(features.shape[0], -1)
    return -moved if symmetry.negate else moved


def feature_grid(height: int, width: int, side: int) -> tuple[int, int]:
    """The grid :func:`harness.metrics.identity_features` reduces an ``height x width`` image to."""
    return (min(height, side), min(width, side)) if max(height, width) > side else (height, width)

