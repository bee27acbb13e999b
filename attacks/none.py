"""``none``: the raw ciphertext as the "restoration", the baseline every attack must beat.

SSIM(ciphertext, plain) is far from 0 for ciphers that only move pixels inside small blocks
(the seed's cipher scores about 0.12 on 32 x 32 photographs), so an attack's number means
something only next to this one.
"""

from __future__ import annotations

import torch

from attacks.base import Attack, AttackConfig
from harness.progress import ProgressCallback
from harness.registry import attacks


@attacks.register("none", "identity", "ciphertext")
class NoAttack(Attack):
    """Returns the ciphertext itself (grayscale-based ciphers: split into planes, converted to RGB)."""

    streams = True
    baseline = True

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        self.note = "raw ciphertext compared with the plain image (no attack)"

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.layout is not None
        return self.layout.to_plain_colour(ciphertexts.clone())
