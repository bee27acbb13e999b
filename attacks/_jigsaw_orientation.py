"""Whole-image orientation for ``extended_jigsaw``: cues that point the same way in most photo collections.

The jigsaw fixes a restoration only up to one whole-image symmetry (quarter turns, a mirror,
negation, R <-> B).  A discriminant learnt on the attacker's own images learns *their* content:
fitted on the ``natural`` attacker crops (ten photographs) it picked the wrong variant on three of
four other photo collections.  So the directions here are fixed by how photographs are made, and
the attacker's images only set each cue's scale and check the rule on a held-out part:

- light comes from above: the top half is brighter (``top_light``); scenes are layered
  horizontally, so vertical differences dominate (``vertical_detail``, ``vertical_light``);
- reflectance times illumination: bright regions have more absolute contrast (``weber``);
  photographs are mostly darker than mid-grey with a bright tail (``dark``, ``bright_tail``);
- colour: warm light, blue shadows and the red channel's higher contrast (``warm``,
  ``warm_light``, ``red_contrast``); colours spread along the
  yellow-blue daylight axis, so Cb and Cr are anti-correlated (``chroma_axis``: it tells a
  Cb <-> Cr swap with one negation, a quarter turn of the chroma plane, from the original).

No cue we found tells green from magenta consistently (foliage against skin and reds): for
``etc_gray``, Cb <-> Cr swapped *and* both negated keeps the daylight axis and is the choice
most often wrong.

Every cue is invariant under a left-right mirror, so the rule leaves that one choice open
(a mirrored photograph is as plausible as the original): variants with ``mirror = 1`` are never
preferred.  The score of a variant is a sum over all the images scored, so it does not depend
on their order.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

#: cue names, in the order of :func:`cue_features`' columns
CUES = (
    "top_light", "vertical_detail", "vertical_light", "weber", "dark", "bright_tail",
    "warm", "warm_light", "red_contrast", "chroma_axis",
)
#: cues that need colour (zero on gray images)
COLOUR_CUES = ("warm", "warm_light", "red_contrast", "chroma_axis")


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of ``[B, P]`` rows (0 where either is constant)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-6)


def cue_features(images: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB (uint8 range) -> ``[B, len(CUES)]``, each positive on upright photographs on average."""
    x = images.double() / 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    half = x.shape[-2] // 2
    top_bottom = y[:, :half].mean((1, 2)) - y[:, half:].mean((1, 2))
    left_right = y[:, :, :half].mean((1, 2)) - y[:, :, half:].mean((1, 2))
    dy, dx = y.diff(dim=1), y.diff(dim=2)
    block_mean = F.avg_pool2d(y.unsqueeze(1), 4).flatten(1)
    block_std = (F.avg_pool2d(y.unsqueeze(1) ** 2, 4).flatten(1) - block_mean**2).clamp_min(0).sqrt()
    flat = y.flatten(1) - y.flatten(1).mean(1, keepdim=True)
    return torch.stack([
        top_bottom,
        (dy.pow(2).mean((1, 2)) + 1e-4).log() - (dx.pow(2).mean((1, 2)) + 1e-4).log(),
        top_bottom.abs() - left_right.abs(),
        _corr(block_mean, block_std),
        0.5 - y.mean((1, 2)),
        flat.pow(3).mean(1) / flat.pow(2).mean(1).clamp_min(1e-9).pow(1.5),
        (r - b).mean((1, 2)),
        _corr(y.flatten(1), (r - b).flatten(1)),
        r.std((1, 2)) - b.std((1, 2)),
        -_corr((b - y).flatten(1), (r - y).flatten(1)),
    ], 1)


Transform = Callable[[torch.Tensor, tuple], torch.Tensor]


class OrientationRule:
    """Score ``sum_images sum_cues w_c * cue_c(images)``, ``w_c = 1 / std`` of the cue on upright attacker images.

    Only the scale is learnt: the attacker's collection may be a handful of photographs whose
    own layout would otherwise be learnt as "up".
    """

    def __init__(self, images: torch.Tensor, cues: Sequence[str] = CUES) -> None:
        features = cue_features(images)
        spread = features.std(0)
        used = torch.tensor([name in cues for name in CUES]) & (spread > 1e-9)
        self.weights = torch.where(used, 1.0 / spread.clamp_min(1e-9), torch.zeros_like(spread))

    def score(self, images: torch.Tensor) -> float:
        return float((cue_features(images) @ self.weights).sum())

    def choose(self, candidates: Iterable[torch.Tensor], group: Sequence[tuple], mirror_at: int | None) -> tuple[int, list[float]]:
        """Index of the candidate (the images under ``group[i]``) scored highest, never a mirrored one; all scores."""
        scores = [
            self.score(images) if mirror_at is None or not variant[mirror_at] else float("-inf")
            for images, variant in zip(candidates, group)
        ]
        return max(range(len(group)), key=scores.__getitem__), scores


def fit_rule(
    images: torch.Tensor, group: Sequence[tuple], transform: Transform, mirror_at: int | None, cues: Sequence[str] = CUES,
    seed: int = 0, holdout: float = 0.3, batch: int = 50,
) -> tuple[OrientationRule, float]:
    """The rule fitted on all ``images`` (``group[0]`` must be the identity), and its held-out accuracy.

    ``transform(images, variant)``: the RGB images seen under a variant; ``mirror_at``: where the
    mirror bit sits in a variant (None: no mirror in ``group``).

    The accuracy: a rule fitted on a seeded ``1 - holdout`` of the images, applied to batches of
    ``batch`` held-out images shown upright, picks upright (up to the mirror it leaves open) in
    this fraction of the batches.
    """
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    n_held = int(holdout * images.shape[0])
    accuracy = float("nan")
    if n_held >= 2 and images.shape[0] - n_held >= 2:
        rule = OrientationRule(transform(images[order[n_held:]], group[0]), cues)
        held = images[order[:n_held]]
        right = []
        for part in held.split(batch):
            best, _ = rule.choose([transform(part, variant) for variant in group], group, mirror_at)
            right.append(all(v == 0 for i, v in enumerate(group[best]) if i != mirror_at))
        accuracy = sum(right) / len(right)
    return OrientationRule(transform(images, group[0]), cues), accuracy
