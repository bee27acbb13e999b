"""``vit_kiya``: the block-wise image transformation for ViT of Kiya, Iijima, MaungMaung, Kinoshita
("Image and Model Transformation with Secret Key for Vision Transformer", IEICE Trans. Inf. & Syst.
E106-D(1):2-11, 2023; arXiv 2207.05366).

Key: ``block_perm`` K1 (a permutation of the N blocks) and ``pixel_perm`` K2 (a permutation of the
whole C*M*M patch vector, flattened in timm's (channel, row, column) order, so the colour channels
mix).  One K2 serves every block of every image.  Encryption: output block i is input block
K1[i] (block scrambling), then entry j of every block's vector is entry K2[j] (pixel shuffling).
One precomputed gather (:class:`ciphers.base.IndexMapCipher`).  Its exact model transformation for
a timm ViT is ``harness/classifiers/vit_kiya_keyed.py``.
"""

from __future__ import annotations

import math

import numpy as np

from ciphers._common import reject_options, seeded_sizes
from ciphers.base import IndexMapCipher, Traits, check_block_grid
from ciphers.blockwise_ak import block_vector_index, block_vector_source
from harness.keys import check_permutation, log2_factorial, rng
from harness.registry import ciphers


@ciphers.register("vit_kiya")
class VitKiyaCipher(IndexMapCipher):
    """Block scrambling (K1) then one shuffle (K2) of every block's C*M*M vector in CHW order."""

    default_block_size = 4
    channels = 3
    permutation_keys = ("block_perm", "pixel_perm")
    # the components of a block change places across pixels and channels: "pixel_shuffle" is the
    # closest movement value, channel_shuffle=True says the components do not stay in their pixel
    traits = Traits(block_scrambling=True, within_block="pixel_shuffle", channel_shuffle=True, byte_map=True)

    def __init__(self, block_size: int, block_perm: object, pixel_perm: object) -> None:
        super().__init__(block_size)
        self.block_perm = check_permutation(block_perm, None, "block_perm")
        self.pixel_perm = check_permutation(pixel_perm, 3 * self.block_size * self.block_size, "pixel_perm")

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "VitKiyaCipher":
        """From one ``default_rng(seed)``: ``block_perm = permutation(N)``, then ``pixel_perm = permutation(3 M^2)``."""
        reject_options("vit_kiya", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        generator = rng(seed)
        block_perm = generator.permutation((height // block_size) * (width // block_size))
        return cls(block_size, block_perm, generator.permutation(3 * block_size * block_size))

    def key(self) -> dict[str, np.ndarray]:
        return {"block_perm": self.block_perm.copy(), "pixel_perm": self.pixel_perm.copy()}

    @property
    def n_blocks(self) -> int:
        return int(self.block_perm.shape[0])

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        check_block_grid(self.n_blocks, height, width, self.block_size, "block_perm")
        block, j = block_vector_index(channels, height, width, self.block_size, order="chw")
        return block_vector_source(self.block_perm[block], self.pixel_perm[j], channels, height, width, self.block_size, "chw")

    def key_space(self) -> int:
        """N! (3 M^2)!: distinct keys give distinct gathers, so effective = nominal."""
        return math.factorial(self.n_blocks) * math.factorial(self.pixel_perm.shape[0])

    def key_space_log2(self) -> float:
        return log2_factorial(self.n_blocks) + log2_factorial(self.pixel_perm.shape[0])

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "n_blocks": self.n_blocks}
