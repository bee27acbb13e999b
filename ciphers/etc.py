"""``etc`` and ``etc_gray``: block-wise encryption-then-compression (Kurihara et al.; Chuman et al. 2019).

Both transform every M x M block at its original position with its own key (one of the 8 dihedral
geometries, a negative-positive bit and, for colour EtC, one of the 6 colour orders) and then
scramble the blocks (output block i is transformed block ``block_perm[i]``).  Each is one
precomputed gather plus one XOR mask (:class:`ciphers.base.IndexMapCipher`).  ``etc_gray`` first
turns RGB into full-range YCbCr and lays the Y, Cb and Cr planes side by side as one H x 3W
grayscale image; decryption converts back to RGB, which loses at most 1 per component.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ciphers._colour import rgb_to_ycbcr, ycbcr_to_rgb
from ciphers._common import reject_options, seeded_sizes
from ciphers.transforms import CHANNEL_PERMUTATIONS, N_GEOMETRIES, dihedral_source
from ciphers.base import IndexMapCipher, Shape, Traits, check_block_grid
from ciphers.pieces import PieceMap
from harness.keys import check_choices, check_permutation, log2_factorial, rng
from harness.registry import ciphers

def _check_per_block(values: object, n_choices: int, name: str) -> np.ndarray:
    """A 1-D array of per-block choices in ``0..n_choices-1`` (its length is checked against the grid later)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one entry per block), got shape {tuple(array.shape)}")
    return check_choices(array, array.shape, n_choices, name)


class _BlockwiseEtC(IndexMapCipher):
    """Per-block geometry, negative-positive and (optionally) colour order, then block scrambling."""

    permutation_keys = ("block_perm",)

    def __init__(
        self, block_size: int, geometry: object, negpos: object, block_perm: object, channel_perm: object = None
    ) -> None:
        super().__init__(block_size)
        self.geometry = _check_per_block(geometry, N_GEOMETRIES, "geometry")
        self.negpos = _check_per_block(negpos, 2, "negpos")
        self.channel_perm = None if channel_perm is None else _check_per_block(channel_perm, 6, "channel_perm")
        self.block_perm = check_permutation(block_perm, None, "block_perm")
        lengths = {name: len(value) for name, value in self._key_arrays().items()}
        if len(set(lengths.values())) != 1:
            listed = ", ".join(f"{name}={length}" for name, length in lengths.items())
            raise ValueError(f"every key entry needs one value per block; got lengths {listed}")

    def _key_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"geometry": self.geometry, "negpos": self.negpos, "channel_perm": self.channel_perm}
        return {**{k: v for k, v in arrays.items() if v is not None}, "block_perm": self.block_perm}

    def key(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self._key_arrays().items()}

    @property
    def n_blocks(self) -> int:
        return int(self.block_perm.shape[0])

    def key_from_pieces(self, pieces: PieceMap) -> dict[str, np.ndarray]:
        """The key of a piece map: every block is a piece, so it is exact (keys sit at the source position)."""
        if pieces.source.shape != (self.n_blocks,):
            raise ValueError(f"pieces must describe {self.n_blocks} blocks, got {pieces.source.shape[0]}")
        block_perm = pieces.source
        key = {"geometry": np.empty_like(block_perm), "negpos": np.empty_like(block_perm)}
        key["geometry"][block_perm], key["negpos"][block_perm] = pieces.geometry, pieces.negpos
        if self.channel_perm is not None:
            key["channel_perm"] = np.empty_like(block_perm)
            key["channel_perm"][block_perm] = pieces.channel_order
        return {**key, "block_perm": block_perm.copy()}

    def _block_maps(self, channels: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat gather index and XOR mask over ``[channels, height, width]`` (the plane stack encrypted)."""
        m = self.block_size
        check_block_grid(self.n_blocks, height, width, m, "block_perm")
        cols, plane = width // m, height * width
        channel, pixel = np.divmod(np.arange(channels * plane), plane)
        row, col = np.divmod(pixel, width)
        source_block = self.block_perm[(row // m) * cols + col // m]
        source_local = dihedral_source(m)[self.geometry[source_block], (row % m) * m + col % m]
        if self.channel_perm is not None:
            channel = CHANNEL_PERMUTATIONS[self.channel_perm[source_block], channel]
        source_row = (source_block // cols) * m + source_local // m
        source_col = (source_block % cols) * m + source_local % m
        mask = (self.negpos[source_block] * 255).astype(np.uint8)
        return channel * plane + source_row * width + source_col, mask

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._block_maps(channels, height, width)[0]

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._block_maps(channels, height, width)[1]

    def _transforms_per_block(self) -> int:
        """Distinct per-block maps: 8 geometries (1 for 1 x 1 blocks) x 2 x colour orders."""
        geometries = N_GEOMETRIES if self.block_size > 1 else 1
        return geometries * 2 * (6 if self.channel_perm is not None else 1)

    def _keys_per_block(self) -> int:
        return N_GEOMETRIES * 2 * (6 if self.channel_perm is not None else 1)

    def key_space(self) -> int:
        return math.factorial(self.n_blocks) * self._keys_per_block() ** self.n_blocks

    def key_space_log2(self) -> float:
        return log2_factorial(self.n_blocks) + self.n_blocks * math.log2(self._keys_per_block())

    def effective_key_space(self) -> int:
        return math.factorial(self.n_blocks) * self._transforms_per_block() ** self.n_blocks

    def effective_key_space_log2(self) -> float:
        return log2_factorial(self.n_blocks) + self.n_blocks * math.log2(self._transforms_per_block())

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "n_blocks": self.n_blocks}


@ciphers.register("etc")
class EtCCipher(_BlockwiseEtC):
    """Colour EtC: per block geometry, negative-positive and colour order, then block scrambling."""

    default_block_size = 4
    channels = 3
    traits = Traits(
        block_scrambling=True, within_block="dihedral", per_position_key=True, negative_positive=True,
        channel_shuffle=True, byte_map=True,
    )

    def __init__(
        self, block_size: int, geometry: object, negpos: object, channel_perm: object, block_perm: object
    ) -> None:
        super().__init__(block_size, geometry, negpos, block_perm, channel_perm)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "EtCCipher":
        """From ``default_rng(seed)``: geometry ``integers(0, 8, N)``, negpos ``integers(0, 2, N)``,
        channel_perm ``integers(0, 6, N)``, block_perm ``permutation(N)``, in that order."""
        reject_options("etc", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        n_blocks = (height // block_size) * (width // block_size)
        generator = rng(seed)
        geometry = generator.integers(0, N_GEOMETRIES, n_blocks)
        negpos = generator.integers(0, 2, n_blocks)
        channel_perm = generator.integers(0, 6, n_blocks)
        return cls(block_size, geometry, negpos, channel_perm, generator.permutation(n_blocks))


@ciphers.register("etc_gray", "etc_grayscale")
class EtCGrayCipher(_BlockwiseEtC):
    """Grayscale-based EtC: RGB -> YCbCr planes side by side (H x 3W, one channel), then per block
    geometry and negative-positive, then block scrambling over all 3N blocks of that gray image.

    Decryption returns RGB; the YCbCr rounding loses at most 1 per component
    (:attr:`roundtrip_max_error`), which is why this cipher is not bit-exact.
    """

    default_block_size = 8
    channels = 3
    ciphertext_channels = 1
    roundtrip_max_error = 1
    # a gather + XOR over the YCbCr planes, not over the RGB bytes: byte_map stays False
    traits = Traits(
        block_scrambling=True, within_block="dihedral", per_position_key=True, negative_positive=True,
        colour_space="ycbcr_planes",
    )

    def __init__(self, block_size: int, geometry: object, negpos: object, block_perm: object) -> None:
        super().__init__(block_size, geometry, negpos, block_perm)

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "EtCGrayCipher":
        """From ``default_rng(seed)``, over the n = 3N blocks of the H x 3W gray image: geometry
        ``integers(0, 8, n)``, negpos ``integers(0, 2, n)``, block_perm ``permutation(n)``, in that order."""
        reject_options("etc_gray", options)
        block_size, height, width = seeded_sizes(cls, image_size, block_size)
        n_blocks = 3 * (height // block_size) * (width // block_size)
        generator = rng(seed)
        geometry = generator.integers(0, N_GEOMETRIES, n_blocks)
        negpos = generator.integers(0, 2, n_blocks)
        return cls(block_size, geometry, negpos, generator.permutation(n_blocks))

    def encrypted_shape(self, shape: Shape) -> Shape:
        batch, _, height, width = shape
        return (batch, 1, height, 3 * width)

    def _encrypt(self, images: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        batch, _, height, width = images.shape
        gray = images.new_empty((batch, 1, height, 3 * width))
        rgb_to_ycbcr(images, out=self._planes(gray))  # written straight into the side-by-side layout
        return super()._encrypt(gray, image_ids)

    @staticmethod
    def _planes(gray: torch.Tensor) -> torch.Tensor:
        """The ``[B, 3, H, W]`` view of the Y, Cb and Cr planes of an ``[B, 1, H, 3W]`` gray image."""
        batch, _, height, gray_width = gray.shape
        return gray.view(batch, height, 3, gray_width // 3).permute(0, 2, 1, 3)

    def _decrypt(self, ciphertexts: torch.Tensor, image_ids: torch.Tensor | None) -> torch.Tensor:
        _, _, height, gray_width = ciphertexts.shape
        if height % self.block_size or gray_width % (3 * self.block_size):
            raise ValueError(
                f"ciphertexts of etc_gray are H x 3W gray images with H and W divisible by block_size "
                f"{self.block_size}, got {height}x{gray_width}"
            )
        return ycbcr_to_rgb(self._planes(super()._decrypt(ciphertexts, image_ids)))
