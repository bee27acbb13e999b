"""``fr``: feature reconstruction (Chang & Case, arXiv 2004.13263), a ciphertext-only attack.

*Basic*: every component ``v`` becomes ``v`` if ``v <= 127`` else ``255 - v``.  Because
``fold(255 - v) == fold(v)``, this undoes every negative-positive flip up to one global fold;
edges and structure come back, absolute intensities do not.

*Advanced*, for pixel-wise schemes (PE): scan the image in raster order; each pixel takes, among
its 48 candidate plaintexts (6 channel orders x 8 flip patterns), the one closest in L1 to the
already-restored pixel above it (the pixel to its left in the first row; the first pixel is its
own fold, since no plain value is known).  Rows depend on the row above, so the scan runs over
rows (and over the columns of row 0) with every step vectorised over the batch and the row.

Which step applies depends on the cipher's algorithm, which the attacker knows: the fold only
means something for ciphers with a negative-positive step; for the others it is skipped and the
note says so (mode ``"field"`` folds every cipher, as the field's MATLAB code did).
"""

from __future__ import annotations

import itertools

import torch

from attacks.base import Attack, AttackConfig, CipherFamily
from harness.progress import ProgressCallback
from harness.registry import attacks

MODES = ("auto", "basic", "advanced", "field")
#: images per advanced scan (bounds memory, not results)
ADVANCED_CHUNK = 512

#: candidate inverse transforms of one pixel: channel orders (itertools order) x flip patterns,
#: flip pattern b flips channel j when bit (2 - j) of b is set; ties go to the first candidate
_ORDERS = torch.tensor(list(itertools.permutations(range(3))), dtype=torch.long)
_FLIPS = torch.tensor([[(b >> (2 - j)) & 1 for j in range(3)] for b in range(8)], dtype=torch.uint8) * 255


def fold(images: torch.Tensor) -> torch.Tensor:
    """Basic FR: ``v`` if ``v <= 127`` else ``255 - v``, per component."""
    return torch.minimum(images, 255 - images)


def candidates(pixels: torch.Tensor) -> torch.Tensor:
    """All 48 channel-order x flip variants of ``[..., 3]`` uint8 pixels: ``[..., 48, 3]``."""
    ordered = pixels[..., _ORDERS.to(pixels.device)]  # [..., 6, 3]
    flipped = ordered.unsqueeze(-2) ^ _FLIPS.to(pixels.device)  # [..., 6, 8, 3]
    return flipped.flatten(-3, -2)


def _closest(cands: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The candidate ``[..., 48, 3]`` nearest (L1) to ``reference`` ``[..., 3]``: ``[..., 3]``."""
    distance = (cands.short() - reference.short().unsqueeze(-2)).abs().sum(-1)
    index = distance.argmin(-1, keepdim=True)
    return cands.gather(-2, index.unsqueeze(-1).expand(*index.shape, 3)).squeeze(-2)


def advanced(images: torch.Tensor) -> torch.Tensor:
    """Advanced FR on uint8 ``[B, 3, H, W]`` ciphertexts of a pixel-wise scheme."""
    if images.shape[1] != 3:
        raise ValueError(f"advanced FR needs 3 colour channels, got {images.shape[1]}")
    pixels = images.permute(0, 2, 3, 1)  # [B, H, W, 3]
    out = torch.empty_like(pixels)
    height, width = pixels.shape[1:3]
    out[:, 0, 0] = fold(pixels[:, 0, 0])
    for col in range(1, width):  # first row: left neighbour, one column at a time
        out[:, 0, col] = _closest(candidates(pixels[:, 0, col]), out[:, 0, col - 1])
    for row in range(1, height):  # later rows: the row above, a whole row at a time
        out[:, row] = _closest(candidates(pixels[:, row]), out[:, row - 1])
    return out.permute(0, 3, 1, 2).contiguous()


@attacks.register("fr", "feature_reconstruction")
class FeatureReconstruction(Attack):
    """Basic fold and advanced neighbour-consistency search (docs/attacks.md, Attacks: fr)."""

    streams = True

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu", mode: str = "auto") -> None:
        super().__init__(seed=seed, device=device)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.step = "none"

    def _choose_step(self, family: CipherFamily) -> tuple[str, str]:
        name, traits = family.canonical_name, family.traits
        pixelwise_colour = traits.negative_positive and traits.channel_shuffle and family.resolved_block_size == 1
        if self.mode == "field":
            return "basic", "basic FR fold applied to every cipher, as the field's code does"
        if self.mode == "advanced" or (self.mode == "auto" and pixelwise_colour):
            return "advanced", "advanced FR: raster neighbour search over 6 channel orders x 8 flips"
        if traits.negative_positive:
            return "basic", "basic FR fold undoes the negative-positive flips up to a global fold"
        return "none", f"basic FR fold is a no-op: {name} has no negative-positive step"

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        assert self.family is not None
        self.step, self.note = self._choose_step(self.family)
        if self.step == "advanced" and self.channels != 3:
            raise ValueError(f"advanced FR needs 3 colour channels, got {self.channels}")

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.layout is not None
        if self.step == "advanced":  # in chunks: the candidates of a row take 288 bytes per pixel
            restored = torch.cat([advanced(chunk) for chunk in ciphertexts.split(ADVANCED_CHUNK)])
        elif self.step == "basic":
            restored = fold(ciphertexts)
        else:
            restored = ciphertexts.clone()
        return self.layout.to_plain_colour(restored)

    def _state(self) -> dict[str, str]:
        return {"step": self.step}

    def _load_state(self, state) -> None:
        self.step = str(state["step"])
