"""Build registered components by name."""

from __future__ import annotations

from ciphers.base import Cipher
from harness.registry import ciphers


def create_cipher(
    name: str, image_size: tuple[int, int], block_size: int | None = None, seed: int = 0, **options: object
) -> Cipher:
    """The cipher ``name`` with a key drawn from ``seed`` for images of ``image_size``.

    ``None`` options are dropped so a caller's unset flags never override a cipher's default.
    """
    kept = {k: v for k, v in options.items() if v is not None}
    return ciphers.get(name).from_seed(seed, image_size=image_size, block_size=block_size, **kept)
