"""``proposed``: the seed paper's block scrambling plus sub-block pixel shuffling (Qi et al. 2022).

Key: ``block_perm`` K1 (a permutation of the N blocks) and ``pixel_perm`` K2 (a permutation of
the S = (M/2)^2 positions of every (M/2) x (M/2) sub-block; one K2 for all sub-blocks).  A pixel
keeps its colour values together.  The whole cipher is one precomputed gather.
"""

from __future__ import annotations

import math

import numpy as np

from ciphers._common import reject_options
from ciphers.base import IndexMapCipher, Traits, block_scramble_map, check_block_grid, spatial_to_flat
from harness.keys import check_permutation, log2_factorial, rng
from harness.registry import ciphers


@ciphers.register("proposed", "vit_blockwise")
class ProposedCipher(IndexMapCipher):
    """Block scrambling (K1) then the same pixel shuffle (K2) inside every sub-block."""

    even_block = True
    channels = None
    default_block_size = 4
    permutation_keys = ("block_perm", "pixel_perm")
    traits = Traits(block_scrambling=True, within_block="pixel_shuffle", byte_map=True)

    def __init__(self, block_size: int, block_perm: object, pixel_perm: object) -> None:
        super().__init__(block_size)
        half = self.block_size // 2
        self.block_perm = check_permutation(block_perm, None, "block_perm")
        self.pixel_perm = check_permutation(pixel_perm, half * half, "pixel_perm")

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "ProposedCipher":
        """K1 = rng.permutation(N), then K2 = rng.permutation(S), from ``default_rng(seed)``."""
        reject_options("proposed", options)
        block_size = cls._check_block_size(cls.default_block_size if block_size is None else block_size)
        height, width = cls._check_image_size(image_size, block_size)
        generator = rng(seed)
        n_blocks = (height // block_size) * (width // block_size)
        block_perm = generator.permutation(n_blocks)
        pixel_perm = generator.permutation((block_size // 2) ** 2)
        return cls(block_size, block_perm, pixel_perm)

    def key(self) -> dict[str, np.ndarray]:
        return {"block_perm": self.block_perm.copy(), "pixel_perm": self.pixel_perm.copy()}

    @property
    def n_blocks(self) -> int:
        return int(self.block_perm.shape[0])

    def pixel_shuffle_map(self, height: int, width: int) -> np.ndarray:
        """``[H*W]`` map of step 5: position k of each sub-block takes position K2[k]."""
        m, half = self.block_size, self.block_size // 2
        rows, cols = np.divmod(np.arange(height * width), width)
        u, v = rows % m, cols % m
        k = (u % half) * half + (v % half)
        src_k = self.pixel_perm[k]
        src_row = rows - u + (u // half) * half + src_k // half
        src_col = cols - v + (v // half) * half + src_k % half
        return src_row * width + src_col

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        check_block_grid(self.n_blocks, height, width, self.block_size, "block_perm")
        scramble = block_scramble_map(height, width, self.block_size, self.block_perm)
        # out[p] = scrambled[shuffle[p]] = in[scramble[shuffle[p]]]
        return spatial_to_flat(scramble[self.pixel_shuffle_map(height, width)], channels)

    def key_space(self) -> int:
        return math.factorial(self.n_blocks) * math.factorial(self.pixel_perm.shape[0])

    def key_space_log2(self) -> float:
        return log2_factorial(self.n_blocks) + log2_factorial(self.pixel_perm.shape[0])

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "n_blocks": self.n_blocks}
