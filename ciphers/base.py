"""The cipher contract every registered cipher obeys.

Images are ``torch.uint8`` tensors ``[B, C, H, W]`` on any device.  ``decrypt(encrypt(x))``
equals ``x`` bit for bit.  A cipher is built either from explicit key arrays (its constructor)
or from a seed (:meth:`Cipher.from_seed`); :meth:`Cipher.key` returns the explicit key so it can
be saved, and ``repr`` never shows it.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ciphers.pieces import PieceMap

Shape = tuple[int, ...]

WITHIN_BLOCK = ("none", "pixel_shuffle", "nibble_shuffle", "dihedral")
COLOUR_SPACES = ("rgb", "ycbcr_planes")
KEYSTREAMS = ("none", "xor", "additive", "substitution")


@dataclass(frozen=True)
class Traits:
    """What a cipher *is*: attacks, classifiers and reports decide from these, never from names.

    Together with :attr:`Cipher.per_image_key` (fixed key or a key per image) they describe the
    structure an attacker may exploit, so a third-party cipher that declares them honestly gets
    every attack that applies to that structure (the conformance suite checks ``byte_map``).

    - ``block_scrambling``: whole M x M blocks change places under one key permutation.
    - ``within_block``: how content moves inside a block: ``"none"``; ``"pixel_shuffle"`` (whole
      pixels permuted by one key shared by every (M/2) x (M/2) sub-block, the seed's cipher);
      ``"nibble_shuffle"`` (4-bit slots of the block's bytes permuted, with 15 - n flips: LE);
      ``"dihedral"`` (every piece, P x P with P = :attr:`Cipher.piece_size`, rotated and/or
      mirrored in place by its own geometry, colour order and negation, and the pieces moved as
      whole units: EtC, whose piece is its block; CFE, whose piece is its sub-block: such a cipher
      implements :meth:`Cipher.key_from_pieces`).
    - ``per_position_key``: the within-block transform has its own key at every block position
      (ELE, EtC) instead of one key shared by all blocks (LE, the seed's cipher).
    - ``negative_positive``: components become ``255 - x`` where the key says so.
    - ``channel_shuffle``: the colour components are permuted where the key says so.
    - ``colour_space``: ``"rgb"``, or ``"ycbcr_planes"``: full-range YCbCr planes laid side by side
      as one grayscale image before the blocks are cut (grayscale-based EtC).
    - ``byte_map``: for one key the whole transform is one gather plus one XOR over the image's
      bytes (``c[j] = x[index[j]] ^ mask[j]``), so known plain/cipher pairs pin it generically.
    - ``keystream``: values are changed where they land by a key-derived stream other than the
      ``255 - x`` and nibble flips above: ``"xor"`` (``x ^ k``), ``"additive"`` (``x + k mod 256``)
      or ``"substitution"`` (a keyed bijection of 0..255 per position, e.g. format-preserving
      encryption of bytes); ``"none"`` otherwise.  A value-only cipher (no movement) declares
      just this, so it is never mistaken for ``plain``.
    """

    block_scrambling: bool = False
    within_block: str = "none"
    per_position_key: bool = False
    negative_positive: bool = False
    channel_shuffle: bool = False
    colour_space: str = "rgb"
    byte_map: bool = False
    keystream: str = "none"

    def __post_init__(self) -> None:
        if self.within_block not in WITHIN_BLOCK:
            raise ValueError(f"within_block must be one of {WITHIN_BLOCK}, got {self.within_block!r}")
        if self.colour_space not in COLOUR_SPACES:
            raise ValueError(f"colour_space must be one of {COLOUR_SPACES}, got {self.colour_space!r}")
        if self.keystream not in KEYSTREAMS:
            raise ValueError(f"keystream must be one of {KEYSTREAMS}, got {self.keystream!r}")

    @property
    def position_permuting(self) -> bool:
        """Whether content changes places (blocks, pixels, nibbles or components)."""
        return self.block_scrambling or self.within_block != "none" or self.channel_shuffle

    @property
    def value_bijection(self) -> bool:
        """Whether values are changed by a keyed bijection where they land (255 - x, 15 - n, a keystream)."""
        return self.negative_positive or self.within_block == "nibble_shuffle" or self.keystream != "none"

    @property
    def identity(self) -> bool:
        """Whether the cipher changes nothing at all (the ``plain`` baseline)."""
        return not (self.position_permuting or self.value_bijection or self.colour_space != "rgb")


class Cipher(abc.ABC):
    """Base class: input validation, key-space helpers and a key-free ``repr``."""

    #: block size used when the caller gives none (the conformance suite uses it too)
    default_block_size: ClassVar[int] = 4
    #: whether the block size must be even (e.g. the seed's sub-block split)
    even_block: ClassVar[bool] = False
    #: colour channels the cipher works on (``None``: any number)
    channels: ClassVar[int | None] = 3
    #: channels of a ciphertext where they differ from ``channels`` (e.g. a grayscale-based cipher)
    ciphertext_channels: ClassVar[int | None] = None
    #: key entries (names in :meth:`key`) that must be permutations
    permutation_keys: ClassVar[tuple[str, ...]] = ()
    #: True when each image gets its own key (key condition ``diff_key``)
    per_image_key: ClassVar[bool] = False
    #: the cipher's structure (:class:`Traits`): what attacks and classifiers decide from
    traits: ClassVar[Traits] = Traits()
    #: largest |decrypt(encrypt(x)) - x| the cipher admits (0: bit-exact; lossy colour transforms declare theirs)
    roundtrip_max_error: ClassVar[int] = 0

    def __init__(self, block_size: int) -> None:
        self.block_size = self._check_block_size(block_size)

    # -- construction -----------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def from_seed(
        cls, seed: int, image_size: tuple[int, int], block_size: int | None = None, **options: object
    ) -> "Cipher":
        """Draw a key from ``numpy.random.default_rng(seed)`` in the documented order."""

    @abc.abstractmethod
    def key(self) -> dict[str, np.ndarray]:
        """The explicit key, as the constructor's keyword arguments (secret: never log it)."""

    def rebuild(self, **key: object) -> "Cipher":
        """A cipher with the same public parameters and key entries replaced by ``key``.

        Used to rebuild a cipher from a saved or recovered key; every entry is validated again.
        """
        return type(self)(self.block_size, **{**self.key(), **key})

    @classmethod
    def _check_block_size(cls, block_size: object) -> int:
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size}")
        if cls.even_block and block_size % 2:
            raise ValueError(f"{cls.__name__} needs an even block_size, got {block_size}")
        return int(block_size)

    @classmethod
    def _check_image_size(cls, image_size: object, block_size: int) -> tuple[int, int]:
        try:
            height, width = (int(v) for v in image_size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be a pair (H, W), got {image_size!r}") from None
        if height % block_size or width % block_size or height < 1 or width < 1:
            raise ValueError(
                f"image_size {(height, width)} is not divisible by block_size {block_size}"
            )
        return height, width

    # -- the transform ----------------------------------------------------------------
    def encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Encrypt a uint8 batch; ``image_ids`` selects per-image keys (ignored for fixed keys)."""
        self.check_images(images, "images")
        return self._encrypt(images, image_ids)

    def decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Exact inverse of :meth:`encrypt` for the same ``image_ids``."""
        self.check_images(ciphertexts, "ciphertexts", encrypted=True)
        return self._decrypt(ciphertexts, image_ids)

    @abc.abstractmethod
    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor: ...

    @abc.abstractmethod
    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor: ...

    def encrypted_shape(self, shape: Shape) -> Shape:
        """Shape of the ciphertext of a batch of ``shape`` (most ciphers keep it)."""
        return tuple(shape)

    def check_images(self, images: object, name: str, encrypted: bool = False) -> None:
        """Raise a ValueError naming ``name`` unless it is a uint8 ``[B, C, H, W]`` batch that fits."""
        if not isinstance(images, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
        if images.dtype != torch.uint8:
            raise ValueError(f"{name} must have dtype torch.uint8 (values 0..255), got {images.dtype}")
        if images.ndim != 4:
            raise ValueError(f"{name} must be shaped [B, C, H, W], got {tuple(images.shape)}")
        _, channels, height, width = images.shape
        expected = self.ciphertext_channels if encrypted and self.ciphertext_channels is not None else self.channels
        if expected is not None and channels != expected:
            raise ValueError(
                f"{name} must have {expected} channels for {type(self).__name__}, got {channels}"
            )
        if not encrypted and (height % self.block_size or width % self.block_size):
            raise ValueError(
                f"{name} size {height}x{width} is not divisible by block_size {self.block_size}"
            )

    # -- key space --------------------------------------------------------------------
    @abc.abstractmethod
    def key_space(self) -> int:
        """Number of distinct keys the construction admits (nominal), exactly."""

    def key_space_log2(self) -> float:
        return math.log2(self.key_space())

    def effective_key_space(self) -> int:
        """Number of distinct transforms; equals :meth:`key_space` unless keys collide."""
        return self.key_space()

    def effective_key_space_log2(self) -> float:
        return math.log2(self.effective_key_space())

    # -- pieces -----------------------------------------------------------------------
    @property
    def piece_size(self) -> int:
        """Side of the square pieces a ``within_block="dihedral"`` cipher transforms and moves whole:
        what a jigsaw attack solves over (the block unless a cipher cuts its blocks finer)."""
        return self.block_size

    def key_from_pieces(self, pieces: PieceMap) -> dict[str, np.ndarray]:
        """The key (entries for :meth:`rebuild`) of this family nearest to ``pieces``, exact when the
        piece map is one of this family's; ``within_block="dihedral"`` ciphers implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not move dihedral pieces (within_block is not 'dihedral')")

    # -- description ------------------------------------------------------------------
    def params(self) -> dict[str, object]:
        """Public, key-free parameters (what ``repr`` and reports show)."""
        return {"block_size": self.block_size}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({shown})"


class IndexMapCipher(Cipher):
    """A cipher that is one gather over the flattened ``C*H*W`` image, then an optional XOR.

    ``ciphertext[i] = plain[index[i]] ^ mask[i]``; subclasses only describe ``index`` and
    ``mask`` for an image shape, and this class caches them per shape and device and applies
    them to the whole batch at once.
    """

    def __init__(self, block_size: int) -> None:
        super().__init__(block_size)
        self._maps: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}

    @abc.abstractmethod
    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        """int64 ``[C*H*W]``: flat input position feeding each flat output position."""

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray | None:
        """uint8 ``[C*H*W]`` XOR-ed onto the gathered values, or None."""
        return None

    def _tensors(self, shape: torch.Size, device: torch.device):
        _, channels, height, width = shape
        cache_key = (channels, height, width, device)
        if cache_key not in self._maps:
            index = self.index_map(channels, height, width)
            inverse = np.argsort(index)
            mask = self.xor_mask(channels, height, width)
            self._maps[cache_key] = (
                torch.from_numpy(index).to(device),
                torch.from_numpy(inverse).to(device),
                None if mask is None else torch.from_numpy(mask).to(device),
                None if mask is None else torch.from_numpy(mask[inverse]).to(device),  # for decryption
            )
        return self._maps[cache_key]

    @staticmethod
    def _gather(flat: torch.Tensor, index: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``flat[:, index] ^ mask`` as one ``torch.gather`` (several times faster than ``index_select``
        on dim 1) over the index expanded, not copied, to the batch, then an in-place XOR."""
        out = torch.gather(flat, 1, index.expand(flat.shape[0], -1))
        if mask is not None:
            out.bitwise_xor_(mask)
        return out

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        index, _, mask, _ = self._tensors(images.shape, images.device)
        return self._gather(images.flatten(1), index, mask).view(images.shape)

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        # (c ^ m)[inverse] = c[inverse] ^ m[inverse]: the mask is stored pre-permuted
        _, inverse, _, inverse_mask = self._tensors(ciphertexts.shape, ciphertexts.device)
        flat = ciphertexts.flatten(1)
        return self._gather(flat, inverse, inverse_mask).view(ciphertexts.shape)


def spatial_to_flat(spatial_index: np.ndarray, channels: int) -> np.ndarray:
    """Lift an ``[H*W]`` pixel map to ``[C*H*W]`` for ciphers that move a pixel's channels together."""
    plane = spatial_index.shape[0]
    return (np.arange(channels)[:, None] * plane + spatial_index[None, :]).reshape(-1)


def block_scramble_map(height: int, width: int, block_size: int, block_perm: np.ndarray) -> np.ndarray:
    """``[H*W]`` map of block scrambling: output block i takes input block ``block_perm[i]``."""
    m = block_size
    cols = width // m
    rows_i, cols_i = np.divmod(np.arange(height * width), width)
    src_block = block_perm[(rows_i // m) * cols + cols_i // m]
    src_row = (src_block // cols) * m + rows_i % m
    src_col = (src_block % cols) * m + cols_i % m
    return src_row * width + src_col


def check_block_grid(n_blocks: int, height: int, width: int, block_size: int, key_name: str) -> None:
    """Raise when an explicit block key was made for a different number of blocks."""
    expected = (height // block_size) * (width // block_size)
    if expected != n_blocks:
        raise ValueError(
            f"{key_name} has {n_blocks} entries but a {height}x{width} image with block_size "
            f"{block_size} has {expected} blocks"
        )
