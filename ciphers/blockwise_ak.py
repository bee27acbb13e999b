"""``ak_shuffle``, ``ak_flip``, ``ak_ffx``: the block-wise transformations with a secret key of
AprilPyone and Kiya ("Block-wise Image Transformation with Secret Key for Adversarially Robust
Defense", IEEE TIFS 2021, arXiv 2010.00801).

Every M x M block is flattened into its d = M*M*C bytes in (row, column, channel) order (HWC, as
the authors' code does) and one key, shared by every block of every image, transforms that vector:

- ``ak_shuffle`` (pixel shuffling): output entry k is input entry ``perm[k]`` (channels mix);
- ``ak_flip`` (bit flipping): entries where ``flip_mask`` is 1 become ``255 - x`` (all 8 bits flipped);
- ``ak_ffx`` (format-preserving encryption): entries where ``ffx_mask`` is 1 become ``sbox[x]``, a
  keyed permutation of 0..255.

The paper evaluates the three as separate defences, so they are three registered ciphers (their
traits differ, and each gets its own conformance run and bench row) rather than one name with a
mode option.  ``ak_shuffle`` and ``ak_flip`` are one gather plus one XOR
(:class:`ciphers.base.IndexMapCipher`); ``ak_ffx`` is a table look-up where the mask says so.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ciphers._common import reject_options, seeded_sizes
from ciphers.base import Cipher, IndexMapCipher, Traits
from harness.keys import check_choices, check_permutation, log2_factorial, rng
from harness.registry import ciphers

#: the byte alphabet ``ak_ffx`` permutes
BYTE_VALUES = 256


def block_vector_index(channels: int, height: int, width: int, block_size: int, order: str = "hwc") -> tuple[np.ndarray, np.ndarray]:
    """For every flat ``[C*H*W]`` position: its block (raster order) and its index in the block's vector.

    ``order`` is how a block's M*M*C values are flattened: ``"hwc"`` (row, column, channel; channel
    fastest: AprilPyone's defence, LE) or ``"chw"`` (channel, row, column: timm's patch vector).
    """
    m, plane = block_size, height * width
    channel, pixel = np.divmod(np.arange(channels * plane), plane)
    row, col = np.divmod(pixel, width)
    block = (row // m) * (width // m) + col // m
    local = (row % m) * m + col % m
    if order == "hwc":
        return block, local * channels + channel
    if order == "chw":
        return block, channel * m * m + local
    raise ValueError(f"order must be 'hwc' or 'chw', got {order!r}")


def block_vector_source(
    block: np.ndarray, index: np.ndarray, channels: int, height: int, width: int, block_size: int, order: str = "hwc"
) -> np.ndarray:
    """Flat ``[C*H*W]`` position of entry ``index`` of block ``block``'s vector (inverse of :func:`block_vector_index`)."""
    m, plane = block_size, height * width
    if order == "hwc":
        local, channel = np.divmod(index, channels)
    elif order == "chw":
        channel, local = np.divmod(index, m * m)
    else:
        raise ValueError(f"order must be 'hwc' or 'chw', got {order!r}")
    block_row, block_col = np.divmod(block, width // m)
    return channel * plane + (block_row * m + local // m) * width + block_col * m + local % m


def published_mask(perm: np.ndarray) -> np.ndarray:
    """The authors' binary key: position k is selected iff ``perm[k] > d / 2`` (d = len(perm)).

    For even d that selects d/2 - 1 positions (23 of 48 for M = 4), for odd d (d - 1)/2.
    """
    return (2 * np.asarray(perm) > perm.shape[0]).astype(np.int64)


def _check_mask(values: object, length: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D 0/1 array of length M*M*C = {length}, got shape {tuple(array.shape)}")
    if array.dtype == np.bool_:
        array = array.astype(np.int64)
    return check_choices(array, (length,), 2, name)


class _AKCipher(Cipher):
    """Shared parts: d = M*M*3, the optional image size a seeded key was drawn for, key-free params."""

    default_block_size = 4
    channels = 3

    def __init__(self, block_size: int, image_size: tuple[int, int] | None = None) -> None:
        super().__init__(block_size)
        self.image_size = None if image_size is None else self._check_image_size(image_size, self.block_size)

    @property
    def vector_length(self) -> int:
        """d = M*M*C, the length of a block's vector."""
        return self.block_size * self.block_size * 3

    def rebuild(self, **key: object) -> "_AKCipher":
        return type(self)(self.block_size, **{**self.key(), **key}, image_size=self.image_size)

    def _check_size(self, height: int, width: int) -> None:
        """A key has no image size of its own; a seeded one was drawn for one and refuses others."""
        if self.image_size is not None and (height, width) != self.image_size:
            raise ValueError(
                f"this {type(self).__name__} was drawn for {self.image_size[0]}x{self.image_size[1]} images, got "
                f"{height}x{width} (build it from the explicit key without image_size for any size)"
            )

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "image_size": self.image_size}


@ciphers.register("ak_shuffle")
class AKShuffleCipher(_AKCipher, IndexMapCipher):
    """Pixel shuffling: every block's HWC vector gathered by one key permutation ``perm`` of d."""

    permutation_keys = ("perm",)
    # values of all three channels change places inside the block; "pixel_shuffle" is the closest
    # movement value, and channel_shuffle=True says the components do not stay in their pixel
    traits = Traits(within_block="pixel_shuffle", channel_shuffle=True, byte_map=True)

    def __init__(self, block_size: int, perm: object, image_size: tuple[int, int] | None = None) -> None:
        super().__init__(block_size, image_size)
        self.perm = check_permutation(perm, self.vector_length, "perm")

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "AKShuffleCipher":
        """``perm = default_rng(seed).permutation(d)`` (the authors draw ``torch.randperm(d)``)."""
        reject_options("ak_shuffle", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        return cls(block_size, rng(seed).permutation(block_size * block_size * 3), image_size=(height, width))

    def key(self) -> dict[str, np.ndarray]:
        return {"perm": self.perm.copy()}

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        self._check_size(height, width)
        block, k = block_vector_index(channels, height, width, self.block_size)
        return block_vector_source(block, self.perm[k], channels, height, width, self.block_size)

    def key_space(self) -> int:
        return math.factorial(self.vector_length)

    def key_space_log2(self) -> float:
        return log2_factorial(self.vector_length)


@ciphers.register("ak_flip")
class AKFlipCipher(_AKCipher, IndexMapCipher):
    """Bit flipping: every block's HWC entries where ``flip_mask`` is 1 become ``255 - x``."""

    traits = Traits(negative_positive=True, byte_map=True)

    def __init__(self, block_size: int, flip_mask: object, image_size: tuple[int, int] | None = None) -> None:
        super().__init__(block_size, image_size)
        self.flip_mask = _check_mask(flip_mask, self.vector_length, "flip_mask")

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "AKFlipCipher":
        """``flip_mask = default_rng(seed).permutation(d) > d / 2`` (the authors' rule on ``torch.randperm(d)``)."""
        reject_options("ak_flip", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        mask = published_mask(rng(seed).permutation(block_size * block_size * 3))
        return cls(block_size, mask, image_size=(height, width))

    def key(self) -> dict[str, np.ndarray]:
        return {"flip_mask": self.flip_mask.copy()}

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        self._check_size(height, width)
        return np.arange(channels * height * width)

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        _, k = block_vector_index(channels, height, width, self.block_size)
        return (self.flip_mask[k] * 255).astype(np.uint8)

    def key_space(self) -> int:
        """Every 0/1 mask of length d: 2^d (distinct masks flip different positions, so effective = nominal)."""
        return 2**self.vector_length


@ciphers.register("ak_ffx")
class AKFFXCipher(_AKCipher):
    """Format-preserving encryption of bytes: entries where ``ffx_mask`` is 1 become ``sbox[x]``.

    ``sbox`` is a keyed permutation of 0..255, the same at every selected position of every block
    (the authors' code likewise builds one look-up table from one password).  Decryption looks the
    selected entries up in ``argsort(sbox)``.
    """

    permutation_keys = ("sbox",)
    traits = Traits(keystream="substitution")

    def __init__(
        self, block_size: int, ffx_mask: object, sbox: object, image_size: tuple[int, int] | None = None
    ) -> None:
        super().__init__(block_size, image_size)
        self.ffx_mask = _check_mask(ffx_mask, self.vector_length, "ffx_mask")
        self.sbox = check_permutation(sbox, BYTE_VALUES, "sbox")
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "AKFFXCipher":
        """From one ``default_rng(seed)``: ``ffx_mask = permutation(d) > d / 2`` (the authors' rule),
        then ``sbox = permutation(256)``."""
        reject_options("ak_ffx", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        generator = rng(seed)
        mask = published_mask(generator.permutation(block_size * block_size * 3))
        return cls(block_size, mask, generator.permutation(BYTE_VALUES), image_size=(height, width))

    def key(self) -> dict[str, np.ndarray]:
        return {"ffx_mask": self.ffx_mask.copy(), "sbox": self.sbox.copy()}

    def _tensors(self, shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, channels, height, width = shape
        cache_key = (channels, height, width, device)
        if cache_key not in self._cache:
            self._check_size(height, width)
            _, k = block_vector_index(channels, height, width, self.block_size)
            self._cache[cache_key] = (
                torch.from_numpy(self.ffx_mask[k].astype(bool)).to(device),
                torch.from_numpy(self.sbox.astype(np.uint8)).to(device),
                torch.from_numpy(np.argsort(self.sbox).astype(np.uint8)).to(device),
            )
        return self._cache[cache_key]

    @staticmethod
    def _substitute(images: torch.Tensor, selected: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1)
        return torch.where(selected, table[flat.long()], flat).view(images.shape)

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        selected, forward, _ = self._tensors(images.shape, images.device)
        return self._substitute(images, selected, forward)

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        selected, _, inverse = self._tensors(ciphertexts.shape, ciphertexts.device)
        return self._substitute(ciphertexts, selected, inverse)

    def key_space(self) -> int:
        """Every 0/1 mask of length d times every permutation of 256: 2^d * 256!."""
        return 2**self.vector_length * math.factorial(BYTE_VALUES)

    def key_space_log2(self) -> float:
        return self.vector_length + log2_factorial(BYTE_VALUES)

    def effective_key_space(self) -> int:
        """Distinct transforms: (2^d - 1)(256! - 1) + 1.

        An empty mask or the identity sbox both give the identity (one transform); otherwise the
        sbox is read off any selected position and the mask off where values change.
        """
        return (2**self.vector_length - 1) * (math.factorial(BYTE_VALUES) - 1) + 1
