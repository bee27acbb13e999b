"""Content-free baselines: guesses an attacker makes without restoring anything.

An attack "restores" only where it beats the best of these on the same images
(``docs/benchmark.md``, Verdicts).  SSIM rewards smooth, mean-matched guesses: a constant grey
image already scores about 0.3 on smooth 32 x 32 crops, and a flat image of each ciphertext's
own mean colour about 0.7 on 224 x 224 crops upsampled from 32 x 32, so a raw number means
nothing without them.  ``none`` (the raw ciphertext) is the third baseline.
"""

from __future__ import annotations

import torch

from attacks.base import Attack, AttackConfig
from harness.progress import ProgressCallback
from harness.registry import attacks

#: attacker images summed at once (a float64 copy of 10,000 images at 224 x 224 would be 12 GB)
MEAN_CHUNK = 256


@attacks.register("mean_image", "attacker_mean")
class MeanImage(Attack):
    """Every restoration is the attacker's own mean image (the same for every ciphertext)."""

    streams = True
    baseline = True

    def _fit(self, attacker_images: torch.Tensor, config: AttackConfig, progress: ProgressCallback | None, *, victim, pairs) -> None:
        total = sum(chunk.double().sum(0) for chunk in attacker_images.split(MEAN_CHUNK))  # bounded memory
        self.mean = (total / attacker_images.shape[0]).round().to(torch.uint8)
        self.note = f"the mean of the attacker's {attacker_images.shape[0]} images (content-free)"

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        return self.mean.to(ciphertexts.device).expand(ciphertexts.shape[0], -1, -1, -1).clone()

    def _state(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean}

    def _load_state(self, state) -> None:
        self.mean = state["mean"]


@attacks.register("mean_colour", "flat_colour")
class MeanColour(Attack):
    """A flat image of each ciphertext's own mean colour: a legitimate ciphertext-only guess.

    For ciphers that keep every image's pixel multiset (the seed's) it is each image's exact mean
    colour; for the others it is whatever their ciphertexts' means are.
    """

    streams = True
    baseline = True

    def _fit(self, attacker_images: torch.Tensor, config: AttackConfig, progress: ProgressCallback | None, *, victim, pairs) -> None:
        self.note = "a flat image of each ciphertext's mean colour (content-free)"

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.layout is not None
        planes = self.layout.to_plain_colour(ciphertexts)
        mean = planes.double().mean(dim=(2, 3), keepdim=True).round().to(torch.uint8)
        return mean.expand_as(planes).clone()
