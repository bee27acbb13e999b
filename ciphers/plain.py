"""``plain``: the identity, so every table has its unencrypted baseline row."""

from __future__ import annotations

import numpy as np
import torch

from ciphers._common import reject_options
from ciphers.base import Cipher, Traits
from harness.registry import ciphers


@ciphers.register("plain", "identity")
class PlainCipher(Cipher):
    """Identity transform; key space 1."""

    channels = None
    default_block_size = 1
    traits = Traits(byte_map=True)

    def __init__(self, block_size: int = 1) -> None:
        super().__init__(block_size)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "PlainCipher":
        reject_options("plain", options)
        block_size = cls._check_block_size(cls.default_block_size if block_size is None else block_size)
        cls._check_image_size(image_size, block_size)
        return cls(block_size)

    def key(self) -> dict[str, np.ndarray]:
        return {}

    def _encrypt(self, images: torch.Tensor, image_ids=None) -> torch.Tensor:
        return images.clone()

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids=None) -> torch.Tensor:
        return ciphertexts.clone()

    def key_space(self) -> int:
        return 1
