"""The nibble machinery of LE and ELE (Tanaka's BlockScramble), as one gather over nibble planes.

A uint8 batch ``[B, C, H, W]`` becomes ``2C`` nibble planes: the low nibbles (``x & 0xF``) of
channels 0..C-1, then the high nibbles (``x >> 4``).  Inside an M x M block, SPEC.md's nibble
vector z (d = M*M*C bytes in (row, column, channel) order, all low nibbles then all high ones) is a
relabelling of those planes, so LE with permutation P,

    z <- flip_F(z);  z <- z[P];  z <- flip_F(z),   F = {i : P[i] > d},

is, for every output nibble i, ``z[P[i]] ^ 15`` exactly when one of ``i``, ``P[i]`` lies in F: a
gather plus an XOR mask over the nibble planes (:class:`ciphers.base.IndexMapCipher`).
"""

from __future__ import annotations

import numpy as np
import torch

from ciphers.base import IndexMapCipher, check_block_grid


def check_permutation_rows(values: object, length: int, name: str) -> np.ndarray:
    """``values`` as int64 ``[N, length]`` if every row is a permutation of ``range(length)``."""
    array = np.asarray(values)
    if array.ndim != 2 or array.shape[1] != length or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape [N, {length}] (one permutation per block), got {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    bad = np.flatnonzero((np.sort(array, axis=1) != np.arange(length)).any(axis=1))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} is not a permutation of 0..{length - 1}")
    return array


def nibble_maps(
    perms: np.ndarray, block_perm: np.ndarray | None, channels: int, height: int, width: int, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gather index and XOR mask over the flattened ``[2C, H, W]`` nibble planes.

    ``perms`` is ``[1, 2d]`` (one LE key for every block) or ``[N, 2d]`` (ELE: the key of each
    block position, applied where the block sits in the plain image); afterwards output block i is
    transformed block ``block_perm[i]`` (no scrambling when ``block_perm`` is None).
    """
    m, plane = block_size, height * width
    d = m * m * channels
    cols = width // m
    nibble_plane, pixel = np.divmod(np.arange(2 * channels * plane), plane)
    high, channel = np.divmod(nibble_plane, channels)
    row, col = np.divmod(pixel, width)
    out_block = (row // m) * cols + col // m
    source_block = out_block if block_perm is None else block_perm[out_block]
    key_row = source_block if perms.shape[0] > 1 else np.zeros_like(source_block)
    position = high * d + ((row % m) * m + col % m) * channels + channel  # i in the nibble vector z
    source = perms[key_row, position]  # P[i]
    flipped = (source > d) ^ (perms[key_row, source] > d)  # i in F xor P[i] in F
    source_high, source_byte = np.divmod(source, d)
    source_pixel, source_channel = np.divmod(source_byte, channels)
    source_row = (source_block // cols) * m + source_pixel // m
    source_col = (source_block % cols) * m + source_pixel % m
    index = (source_high * channels + source_channel) * plane + source_row * width + source_col
    return index, (flipped * 15).astype(np.uint8)


class NibbleCipher(IndexMapCipher):
    """An :class:`IndexMapCipher` whose map acts on the ``2C`` nibble planes instead of the bytes."""

    def __init__(self, block_size: int, perms: np.ndarray, block_perm: np.ndarray | None) -> None:
        super().__init__(block_size)
        self._perms, self._block_perm = perms, block_perm

    def _nibble_maps(self, nibble_planes: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        if self._block_perm is not None:
            check_block_grid(self._perms.shape[0], height, width, self.block_size, "block_perm")
        return nibble_maps(self._perms, self._block_perm, nibble_planes // 2, height, width, self.block_size)

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._nibble_maps(channels, height, width)[0]

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._nibble_maps(channels, height, width)[1]

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return join_nibbles(super()._encrypt(split_nibbles(images), image_ids))

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        return join_nibbles(super()._decrypt(split_nibbles(ciphertexts), image_ids))


def split_nibbles(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> ``[B, 2C, H, W]``: low nibbles of every channel, then high nibbles."""
    channels = images.shape[1]
    nibbles = images.new_empty((images.shape[0], 2 * channels, *images.shape[2:]))
    torch.bitwise_and(images, 15, out=nibbles[:, :channels])
    torch.bitwise_right_shift(images, 4, out=nibbles[:, channels:])
    return nibbles


def join_nibbles(nibbles: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split_nibbles`."""
    channels = nibbles.shape[1] // 2
    return (nibbles[:, channels:] << 4).bitwise_or_(nibbles[:, :channels])
