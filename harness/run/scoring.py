"""Restoring and scoring a security cell's evaluated images a chunk at a time: raw scores, scores
up to the content-keeping transforms (:mod:`harness.symmetry`), identification, and the probes of
what a key-recovery attack put back (positions, key entries)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from attacks.base import Attack
from ciphers.base import Cipher
from harness.lazy import LazyImages, release_freed_memory
from harness.metrics import IDENTIFICATION_SIDE, identify, identity_features, psnr, ssim
from harness.symmetry import Symmetry, SymmetryScores, feature_grid, selection_images, transform_features

#: values of a position code differ by at least this much in some channel (survives +-1 rounding)
_CODE_SPACING = 4
@dataclass
class InvariantScores:
    """Per-image scores under the cell's chosen content-keeping transform."""

    symmetry: Symmetry
    ssim: torch.Tensor
    psnr: torch.Tensor
    identified: torch.Tensor


def position_codes(channels: int, image_size: tuple[int, int]) -> torch.Tensor | None:
    """A probe image whose every pixel is distinct: the pixel's raster index in base 64, x 4.

    Restoring its ciphertext shows which positions an attack puts back (a rearrangement attack
    is independent of content).  None when the channels cannot tell all positions apart.
    """
    height, width = image_size
    base = 256 // _CODE_SPACING
    if base**channels < height * width:
        return None
    index = torch.arange(height * width)
    digits = [(index // base**c) % base * _CODE_SPACING for c in range(channels)]
    return torch.stack(digits).view(1, channels, height, width).to(torch.uint8)


def positions_recovered(attack: Attack, victim_cipher: Cipher, channels: int, image_size: tuple[int, int]) -> float:
    """Fraction of pixel positions whose content the attack restores to the right place."""
    probe = position_codes(channels, image_size)
    if probe is None:
        return math.nan
    restored = attack.restore(victim_cipher.encrypt(probe))
    error = (restored.int() - probe.int()).abs().amax(dim=1)
    return float((error <= victim_cipher.roundtrip_max_error).double().mean())


def key_entries_recovered(recovered: Cipher | None, victim: Cipher) -> float | None:
    """Share of the victim key's entries (all key arrays, element by element) that ``recovered``
    holds, when it is a cipher of the same kind; None when the two keys are not comparable."""
    if recovered is None or type(recovered) is not type(victim):
        return None
    mine, theirs = recovered.key(), victim.key()
    if set(mine) != set(theirs) or any(np.shape(mine[k]) != np.shape(theirs[k]) for k in theirs):
        return None
    equal = sum(int((np.asarray(mine[k]) == np.asarray(theirs[k])).sum()) for k in theirs)
    total = sum(int(np.asarray(theirs[k]).size) for k in theirs)
    return equal / total if total else 1.0


#: pixel values restored and scored at once in a cell (uint8): 2^23 (8,192 images of 32 x 32, 55
#: of 224 x 224) bounds a cell's working set however many images it evaluates
STREAM_VALUES = 2**23


def stream_chunk(image_shape: tuple[int, ...]) -> int:
    """Images per chunk of a streamed security cell (at most 1,024: the restoration batch)."""
    return int(min(1024, max(1, STREAM_VALUES // math.prod(image_shape))))


def encrypt_lazily(cipher: Cipher, images: LazyImages, first_id: int, device: torch.device) -> LazyImages:
    """``images`` encrypted a batch at a time on ``device``; per-image keys follow ids from ``first_id``."""
    shape = tuple(cipher.encrypted_shape((1, *images.image_shape)))[1:]

    def encrypt(batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ids = index + first_id if cipher.per_image_key else None
        return cipher.encrypt(batch.to(device), image_ids=ids)

    return images.map(encrypt, shape)


@dataclass
class Scores:
    """Per-image scores of one restoration pass over the evaluated images, raw and invariant."""

    ssim: torch.Tensor
    psnr: torch.Tensor
    features: torch.Tensor
    kept: torch.Tensor
    symmetry: Symmetry
    invariant_ssim: torch.Tensor
    invariant_psnr: torch.Tensor


class InvariantPass:
    """Chooses the transform on the first :func:`selection_images` restorations (every transform
    scored from their statistics), then scores the remaining ones under that transform only."""

    def __init__(self, image_shape: tuple[int, ...]) -> None:
        self.scan = SymmetryScores(*image_shape)
        self.selection = selection_images(image_shape)
        self.seen = 0
        self.chosen: Symmetry | None = None
        self.later_ssim: list[torch.Tensor] = []
        self.later_psnr: list[torch.Tensor] = []

    def add(self, restored: torch.Tensor, plain: torch.Tensor) -> None:
        take = max(0, min(restored.shape[0], self.selection - self.seen))
        if take:
            self.scan.add(restored[:take], plain[:take])
            self.seen += take
        if take < restored.shape[0]:
            symmetry = self.choose()
            moved = symmetry.apply(restored[take:])
            self.later_ssim.append(ssim(moved, plain[take:]).cpu())
            self.later_psnr.append(psnr(moved, plain[take:]).cpu())

    def choose(self) -> Symmetry:
        if self.chosen is None:
            self.chosen = self.scan.best()
        return self.chosen

    def scores(self) -> tuple[Symmetry, torch.Tensor, torch.Tensor]:
        symmetry = self.choose()
        first_ssim, first_psnr = self.scan.scores(symmetry)
        return symmetry, torch.cat([first_ssim, *self.later_ssim]), torch.cat([first_psnr, *self.later_psnr])


def score_restorations(instance: Attack, cipher: Cipher, plain: LazyImages, device: torch.device, keep: int) -> Scores:
    """Restore and score the evaluated images a chunk at a time (raw and up to the content-keeping
    transforms); keeps the first ``keep`` restorations."""
    ssims, psnrs, features, kept = [], [], [], []
    invariant = InvariantPass(plain.image_shape)
    chunk = stream_chunk(plain.image_shape)
    held = 0
    for start in range(0, len(plain), chunk):
        index = torch.arange(start, min(start + chunk, len(plain)))
        images = plain.take(index).to(device)
        restored = instance.restore(cipher.encrypt(images, image_ids=index if cipher.per_image_key else None)).to(device)
        ssims.append(ssim(restored, images).cpu())
        psnrs.append(psnr(restored, images).cpu())
        features.append(identity_features(restored).cpu())
        invariant.add(restored, images)
        if held < keep:
            kept.append(restored[: keep - held].cpu())
            held += kept[-1].shape[0]
        del images, restored
        release_freed_memory()
    empty = torch.empty((0, *plain.image_shape), dtype=torch.uint8)
    symmetry, invariant_ssim, invariant_psnr = invariant.scores()
    return Scores(torch.cat(ssims), torch.cat(psnrs), torch.cat(features), torch.cat(kept) if kept else empty,
                   symmetry, invariant_ssim, invariant_psnr)


def identification(scores: Scores, evaluated: LazyImages, image_size: tuple[int, int]) -> tuple[torch.Tensor, InvariantScores]:
    """Top-1 identification of the restorations among the evaluated images, raw and under the
    chosen transform (the other invariant scores come from the pass)."""
    gallery = torch.cat([identity_features(chunk) for chunk in evaluated.chunks(stream_chunk(evaluated.image_shape))])
    grid = feature_grid(*image_size, IDENTIFICATION_SIDE)
    moved = identify(transform_features(scores.features, scores.symmetry, grid), gallery)
    return identify(scores.features, gallery), InvariantScores(scores.symmetry, scores.invariant_ssim, scores.invariant_psnr, moved)
