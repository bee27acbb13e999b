"""A toy cipher shipped as a separate package: it permutes the colour channels with a key."""

from __future__ import annotations

import math

import numpy as np

from ciphers.base import IndexMapCipher
from harness.keys import check_permutation, rng


class ChannelSwapCipher(IndexMapCipher):
    """Output channel c is input channel ``channel_perm[c]`` (key space 3! = 6)."""

    default_block_size = 1
    permutation_keys = ("channel_perm",)

    def __init__(self, block_size: int = 1, channel_perm: object = (0, 1, 2)) -> None:
        super().__init__(block_size)
        self.channel_perm = check_permutation(channel_perm, 3, "channel_perm")

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options):
        cls._check_image_size(image_size, 1)
        return cls(1, rng(seed).permutation(3))

    def key(self) -> dict[str, np.ndarray]:
        return {"channel_perm": self.channel_perm.copy()}

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        plane = height * width
        return (self.channel_perm[:, None] * plane + np.arange(plane)[None, :]).reshape(-1)

    def key_space(self) -> int:
        return math.factorial(3)
