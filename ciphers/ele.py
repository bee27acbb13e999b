"""``ele``: extended learnable encryption (Madono, Tanaka, Onishi, Ogawa, AAAI-WS 2020).

Each block position p has its own LE permutation P_p, applied to the block at p in the plain
image; then the blocks are scrambled (output block i is block ``block_perm[i]``).  One gather plus
one XOR over the nibble planes, run as two byte gathers (:mod:`ciphers._nibbles`).
"""

from __future__ import annotations

import math

import numpy as np

from ciphers._common import reject_options, seeded_sizes
from ciphers._nibbles import NibbleCipher, check_permutation_rows
from ciphers.base import Traits
from harness.keys import check_permutation, log2_factorial, rng
from harness.registry import ciphers

#: ito-hiroki's ELE draws each block's seed with ``integers(100000)``
_BLOCK_SEED_RANGE = 100_000


@ciphers.register("ele")
class ELECipher(NibbleCipher):
    """ELE: a different LE key per block position, then block scrambling."""

    default_block_size = 4
    channels = 3
    permutation_keys = ("perms", "block_perm")
    traits = Traits(block_scrambling=True, within_block="nibble_shuffle", per_position_key=True)

    def __init__(self, block_size: int, perms: object, block_perm: object) -> None:
        block_size = self._check_block_size(block_size)
        self.perms = check_permutation_rows(perms, 2 * block_size * block_size * 3, "perms")
        self.block_perm = check_permutation(block_perm, None, "block_perm")
        if self.perms.shape[0] != self.block_perm.shape[0]:
            raise ValueError(
                f"perms has {self.perms.shape[0]} rows but block_perm has {self.block_perm.shape[0]} "
                "entries: both need one per block"
            )
        super().__init__(block_size, self.perms, self.block_perm)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "ELECipher":
        """ito-hiroki's seeding, byte-identical for 32 x 32 / M = 4: block seeds
        ``default_rng(seed).integers(100000, size=N)``, ``perms[p] = default_rng(block_seed[p]).permutation(2d)``,
        and ``block_perm = default_rng(seed).permutation(N)`` from a fresh generator of the same seed."""
        reject_options("ele", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        n_blocks = (height // block_size) * (width // block_size)
        block_seeds = rng(seed).integers(_BLOCK_SEED_RANGE, size=n_blocks)
        perms = np.stack([rng(int(s)).permutation(2 * block_size * block_size * 3) for s in block_seeds])
        return cls(block_size, perms, rng(seed).permutation(n_blocks))

    def key(self) -> dict[str, np.ndarray]:
        return {"perms": self.perms.copy(), "block_perm": self.block_perm.copy()}

    @property
    def n_blocks(self) -> int:
        return int(self.block_perm.shape[0])

    def key_space(self) -> int:
        return math.factorial(self.n_blocks) * math.factorial(self.perms.shape[1]) ** self.n_blocks

    def key_space_log2(self) -> float:
        return log2_factorial(self.n_blocks) + self.n_blocks * log2_factorial(self.perms.shape[1])

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "n_blocks": self.n_blocks}
