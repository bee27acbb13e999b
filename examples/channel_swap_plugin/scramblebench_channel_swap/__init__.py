"""A toy cipher shipped as a separate package: it permutes the colour channels with a key."""

from __future__ import annotations

import math

import numpy as np

from scramblebench import IndexMapCipher, Traits, check_permutation, rng


class ChannelSwapCipher(IndexMapCipher):
    """Output channel c is input channel ``channel_perm[c]`` (key space 3! = 6)."""

    default_block_size = 1
    permutation_keys = ("channel_perm",)
    # what the cipher is: attacks decide from this (kpa's generic gather + XOR solver applies)
    traits = Traits(channel_shuffle=True, byte_map=True)

    def __init__(self, block_size: int = 1, channel_perm: object = (0, 1, 2), image_size: tuple[int, int] | None = None) -> None:
        super().__init__(block_size)
        self.channel_perm = check_permutation(channel_perm, 3, "channel_perm")
        # a seeded key is drawn for one image size (the contract: it refuses images of another)
        self.image_size = None if image_size is None else self._check_image_size(image_size, 1)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options):
        if options:
            raise ValueError(f"channel_swap takes no options, got {sorted(options)}")
        return cls(1, rng(seed).permutation(3), image_size=image_size)

    def rebuild(self, **key: object) -> "ChannelSwapCipher":
        return type(self)(self.block_size, **{**self.key(), **key}, image_size=self.image_size)

    def key(self) -> dict[str, np.ndarray]:
        return {"channel_perm": self.channel_perm.copy()}

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        if self.image_size is not None and (height, width) != self.image_size:
            raise ValueError(f"this key was drawn for {self.image_size[0]}x{self.image_size[1]} images, got {height}x{width}")
        plane = height * width
        return (self.channel_perm[:, None] * plane + np.arange(plane)[None, :]).reshape(-1)

    def key_space(self) -> int:
        return math.factorial(3)
