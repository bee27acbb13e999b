"""``le``: learnable image encryption (Tanaka, ICCE-TW 2018), byte-identical to Tanaka's BlockScramble.

One permutation P of the 2d nibbles of an M x M x 3 block (d = 3 M^2) is the key of every block of
every image; the flip set F = {i : P[i] > d} is derived from it.  The whole cipher is one gather
plus one XOR over the image's nibble planes, run as two byte gathers (:mod:`ciphers._nibbles`).
"""

from __future__ import annotations

import math

import numpy as np

from ciphers._common import reject_options, seeded_sizes
from ciphers._nibbles import NibbleCipher
from ciphers.base import Traits
from harness.keys import check_permutation, log2_factorial, rng
from harness.registry import ciphers


@ciphers.register("le")
class LECipher(NibbleCipher):
    """LE: Tanaka's nibble permutation with derived flips, the same key for every block."""

    default_block_size = 4
    channels = 3
    permutation_keys = ("perm",)
    traits = Traits(within_block="nibble_shuffle")

    def __init__(self, block_size: int, perm: object, image_size: tuple[int, int] | None = None) -> None:
        block_size = self._check_block_size(block_size)
        self.perm = check_permutation(perm, 2 * block_size * block_size * 3, "perm")
        super().__init__(block_size, self.perm[None], None)
        self.image_size = None if image_size is None else self._check_image_size(image_size, block_size)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "LECipher":
        """``perm = default_rng(seed).permutation(2d)`` (as ito-hiroki's port of BlockScramble)."""
        reject_options("le", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        perm = rng(seed).permutation(2 * block_size * block_size * 3)
        return cls(block_size, perm, image_size=(height, width))

    def rebuild(self, **key: object) -> "LECipher":
        return type(self)(self.block_size, **{**self.key(), **key}, image_size=self.image_size)

    def key(self) -> dict[str, np.ndarray]:
        return {"perm": self.perm.copy()}

    def _nibble_maps(self, nibble_planes: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        if self.image_size is not None and (height, width) != self.image_size:
            raise ValueError(
                f"this LE cipher was drawn for {self.image_size[0]}x{self.image_size[1]} images, got "
                f"{height}x{width} (build LECipher(block_size, perm) without image_size for any size)"
            )
        return super()._nibble_maps(nibble_planes, height, width)

    def key_space(self) -> int:
        return math.factorial(self.perm.shape[0])

    def key_space_log2(self) -> float:
        return log2_factorial(self.perm.shape[0])

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "image_size": self.image_size}
