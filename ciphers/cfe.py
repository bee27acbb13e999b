"""``cfe_v1``, ``cfe_v2`` (alias ``cfe``): compression-friendly encryption of CFE-PPAR (Lin, Imaizumi,
Kiya, ICIP 2026; arXiv 2605.05692; the authors' code is public under MIT at importLin/CFE).

Per frame (here: per image), with main blocks of Mm x Mm (``block_size``, the ViT patch: 16) cut
into sub-blocks of Ms x Ms (``sub_block_size``, default Mm / 2 = 8):

1. inside every main block, each sub-block j (raster order) is rotated counter-clockwise
   ``rotation[j]`` quarter turns (numpy ``rot90`` over (H, W)), then flipped by ``flip[j]``
   (0 none, 1 reverse the columns, 2 reverse the rows, 3 both), then negative-positive transformed
   (``255 - x``) where ``negpos[j]`` is 1, then its colour channels reordered
   (output channel c = input channel ``channel_perm[j, c]``);
2. the sub-blocks change places inside the main block: output slot i = transformed sub-block
   ``sub_perm[i]``;
3. the main blocks change places: output main block i = main block ``block_perm[i]``.

V1 uses one sub-key set (the entries of step 1-2) for every main block; V2 one per main block,
belonging to the main block's position *before* step 3 (as the authors' code does).  V1 and V2 are
two registered names because their traits differ (the conformance suite and the bench grid then
cover both); ``cfe`` is V2, the authors' default.  One precomputed gather plus one XOR
(:class:`ciphers.base.IndexMapCipher`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from ciphers._common import reject_options
from ciphers._nibbles import check_permutation_rows
from ciphers.base import IndexMapCipher, Traits, check_block_grid
from ciphers.pieces import PieceMap
from ciphers.transforms import CHANNEL_PERMUTATIONS, dihedral_source
from harness.keys import check_choices, check_permutation, log2_factorial, rng
from harness.registry import ciphers

_MASK64 = (1 << 64) - 1
_GOLDEN64 = 0x9E3779B97F4A7C15
_GOLDEN32 = 0x9E3779B9
#: the authors' salts for the sub-block key K_ST and the main-block key K_MS
_SALT_ST, _SALT_MS = 0x57, 0x35
#: rotation x flip codes (4 x 4) and the dihedral geometries they give (8 distinct)
N_ROTATIONS = N_FLIPS = 4
N_GEOMETRIES = 8


def mix31(*values: int) -> int:
    """The authors' key mixer, as an integer function: h = 0x9E3779B97F4A7C15, then for each value v
    ``h ^= (v + 0x9E3779B9 + (h << 6) + (h >> 2)) mod 2^64``; the result is ``h & (2^31 - 1)``.

    A reproducible hash, not a key-derivation function: every derived key has 31 bits.
    """
    h = _GOLDEN64
    for value in values:
        h ^= (int(value) + _GOLDEN32 + ((h << 6) & _MASK64) + (h >> 2)) & _MASK64
    return h & 0x7FFFFFFF


def geometry_code(rotation: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """The ``etc`` geometry (rotate g % 4 quarter turns, then reverse the columns if g >= 4) equal to
    rotating ``rotation`` quarter turns and then flipping by ``flip``.

    Reversing the rows equals a half turn followed by reversing the columns, and reversing both is a
    half turn, so (r, 0) -> r, (r, 1) -> r + 4, (r, 2) -> (r + 2) % 4 + 4, (r, 3) -> (r + 2) % 4.
    """
    turns = np.where(flip >= 2, (rotation + 2) % 4, rotation)
    return turns + 4 * np.isin(flip, (1, 2))


def draw_sub_keys(generator: np.random.Generator, n_sub: int) -> dict[str, np.ndarray]:
    """One sub-key set for the ``n_sub`` sub-blocks of a main block, in the authors' draw order:
    ``rotation = integers(0, 4, n_sub)``, ``flip = integers(0, 4, n_sub)``, ``negpos = integers(0, 2, n_sub)``,
    ``channel_perm`` = ``n_sub`` successive ``permutation(3)``, ``sub_perm = permutation(n_sub)``."""
    rotation = generator.integers(0, N_ROTATIONS, size=n_sub)
    flip = generator.integers(0, N_FLIPS, size=n_sub)
    negpos = generator.integers(0, 2, size=n_sub)
    channel_perm = np.stack([generator.permutation(3) for _ in range(n_sub)])
    sub_perm = generator.permutation(n_sub)
    return {"rotation": rotation, "flip": flip, "negpos": negpos, "channel_perm": channel_perm, "sub_perm": sub_perm}


class _CFECipher(IndexMapCipher):
    """The shared machinery; subclasses fix ``per_main_block`` (V1: False, V2: True).

    Traits: the sub-block is the piece (:attr:`piece_size`): each is rotated/mirrored in place, its
    colours reordered and maybe negated (the 96 transforms of ``etc``), and sub-block plus main-block
    scrambling together move whole pieces, so a CFE ciphertext is an ``etc`` ciphertext of blocks
    ``sub_block_size`` under a structured key: ``within_block="dihedral"`` with ``channel_shuffle``,
    ``negative_positive`` and ``block_scrambling`` (of the main blocks).
    """

    default_block_size = 16
    channels = 3
    permutation_keys = ("channel_perm", "sub_perm", "block_perm")
    per_main_block: bool = False
    version: int = 0

    def __init__(
        self,
        block_size: int,
        rotation: object,
        flip: object,
        negpos: object,
        channel_perm: object,
        sub_perm: object,
        block_perm: object,
        sub_block_size: int | None = None,
    ) -> None:
        super().__init__(block_size)
        self.sub_block_size = self._check_sub_block(sub_block_size, self.block_size)
        ratio = self.block_size // self.sub_block_size
        n_sub = ratio * ratio
        self.block_perm = check_permutation(block_perm, None, "block_perm")
        rows = self.n_blocks if self.per_main_block else None
        self.rotation = self._check_rows(rotation, rows, n_sub, N_ROTATIONS, "rotation")
        self.flip = self._check_rows(flip, rows, n_sub, N_FLIPS, "flip")
        self.negpos = self._check_rows(negpos, rows, n_sub, 2, "negpos")
        self.sub_perm = self._check_perm_rows(sub_perm, rows, n_sub, "sub_perm")
        self.channel_perm = self._check_channel_perm(channel_perm, rows, n_sub)

    # -- validation ---------------------------------------------------------------------
    @classmethod
    def _check_sub_block(cls, sub_block_size: object, block_size: int) -> int:
        """The sub-block size: ``block_size // 2`` by default; it must divide the main block size."""
        if sub_block_size is None:
            if block_size % 2:
                raise ValueError(
                    f"CFE needs an even block_size (main block) for the default sub-block of block_size / 2, "
                    f"got {block_size}; or give sub_block_size"
                )
            return block_size // 2
        if isinstance(sub_block_size, bool) or not isinstance(sub_block_size, (int, np.integer)) or sub_block_size < 1:
            raise ValueError(f"sub_block_size must be a positive integer, got {sub_block_size!r}")
        if block_size % sub_block_size:
            raise ValueError(f"sub_block_size {sub_block_size} must divide the main block size block_size {block_size}")
        return int(sub_block_size)

    def _shape(self, rows: int | None, *tail: int) -> tuple[int, ...]:
        return tail if rows is None else (rows, *tail)

    def _what(self, rows: int | None) -> str:
        return "one entry per sub-block" if rows is None else "one row per main block, one entry per sub-block"

    @staticmethod
    def _check_row_count(array: np.ndarray, rows: int | None, name: str) -> None:
        """V2: a sub-key row per main block, as many as ``block_perm`` has entries."""
        if rows is not None and array.ndim >= 1 and array.shape[0] != rows:
            raise ValueError(
                f"{name} has {array.shape[0]} rows but block_perm has {rows} entries: "
                "CFE V2 needs one sub-key row per main block"
            )

    def _check_rows(self, values: object, rows: int | None, n_sub: int, n_choices: int, name: str) -> np.ndarray:
        shape = self._shape(rows, n_sub)
        array = np.asarray(values)
        self._check_row_count(array, rows, name)
        if array.shape != shape:
            raise ValueError(f"{name} must have shape {shape} ({self._what(rows)}), got {tuple(array.shape)}")
        return check_choices(array, shape, n_choices, name)

    def _check_perm_rows(self, values: object, rows: int | None, n_sub: int, name: str) -> np.ndarray:
        array = np.asarray(values)
        if rows is None:
            return check_permutation(array, n_sub, name)
        self._check_row_count(array, rows, name)
        return check_permutation_rows(array, n_sub, name)

    def _check_channel_perm(self, values: object, rows: int | None, n_sub: int) -> np.ndarray:
        shape = self._shape(rows, n_sub, 3)
        array = np.asarray(values)
        self._check_row_count(array, rows, "channel_perm")
        if array.shape != shape:
            raise ValueError(
                f"channel_perm must have shape {shape} (a permutation of the 3 channels per sub-block), got {tuple(array.shape)}"
            )
        check_permutation_rows(array.reshape(-1, 3), 3, "channel_perm")
        return array.astype(np.int64)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "_CFECipher":
        """The authors' key derivation (byte-identical keys for the same integer seed):
        ``K_ST = mix31(seed, 0x57)``, ``K_MS = mix31(seed, 0x35)``; the sub-keys of main block p
        (raster position before scrambling) are :func:`draw_sub_keys` from ``default_rng(K_ST)`` (V1,
        the same for every p) or ``default_rng(mix31(K_ST, p))`` (V2); the authors' main-block order
        ``default_rng(K_MS).permutation(N)`` sends block p *to* position order[p], so
        ``block_perm = argsort(order)``.  ``block_size`` is the main block (default 16); option
        ``sub_block_size`` (default ``block_size // 2``)."""
        reject_options(f"cfe_v{cls.version}", options, ("sub_block_size",))
        main = cls._check_block_size(cls.default_block_size if block_size is None else block_size)
        block = cls._check_sub_block(options.get("sub_block_size"), main)
        height, width = cls._check_image_size(image_size, main)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _MASK64:
            raise ValueError(f"seed must be an integer in 0..2^64 - 1 (the authors' mixer is 64-bit), got {seed!r}")
        n_blocks = (height // main) * (width // main)
        n_sub = (main // block) ** 2
        k_st, k_ms = mix31(seed, _SALT_ST), mix31(seed, _SALT_MS)
        if cls.per_main_block:
            sets = [draw_sub_keys(rng(mix31(k_st, p)), n_sub) for p in range(n_blocks)]
            sub_keys = {name: np.stack([s[name] for s in sets]) for name in sets[0]}
        else:
            sub_keys = draw_sub_keys(rng(k_st), n_sub)
        block_perm = np.argsort(rng(k_ms).permutation(n_blocks))
        return cls(main, **sub_keys, block_perm=block_perm, sub_block_size=block)

    @property
    def piece_size(self) -> int:
        return self.sub_block_size

    def key_from_pieces(self, pieces: PieceMap) -> dict[str, np.ndarray]:
        """The CFE key nearest to a piece map, exact when the map is a CFE map: main blocks matched to
        the main block most of their pieces come from, sub-block orders by the pieces that came from
        there (V1: pooled over the main blocks), each transform from the piece the key puts there
        (V1: the majority over the main blocks).  The 16 rotation x flip codes give 8 geometries:
        geometry g is read back as rotation g % 4 with flip 0 or 1 (``geometry_code``'s inverse)."""
        ratio, n_sub = self.block_size // self.sub_block_size, self.n_sub
        rows, cols = pieces.grid
        if rows * cols != self.n_blocks * n_sub or rows % ratio or cols % ratio:
            raise ValueError(f"pieces must be a grid of {self.n_blocks} main blocks of {n_sub} sub-blocks, got {rows} x {cols}")

        def split(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # piece -> (main block, sub-block)
            row, col = np.divmod(flat, cols)
            return (row // ratio) * (cols // ratio) + col // ratio, (row % ratio) * ratio + col % ratio

        main, slot = split(np.arange(rows * cols))
        source_main, source_sub = split(pieces.source)
        main_counts = np.zeros((self.n_blocks, self.n_blocks))
        np.add.at(main_counts, (main, source_main), 1)
        block_perm = linear_sum_assignment(-main_counts)[1]
        key_row = block_perm[main] if self.per_main_block else np.zeros_like(main)
        agree = source_main == block_perm[main]
        sub_counts = np.zeros((self._key_sets(), n_sub, n_sub))
        np.add.at(sub_counts, (key_row[agree], slot[agree], source_sub[agree]), 1)
        sub_perm = np.stack([linear_sum_assignment(-counts)[1] for counts in sub_counts])
        sub = sub_perm[key_row, slot]  # the sub-block the key puts each ciphertext piece back to

        def vote(values: np.ndarray, choices: int) -> np.ndarray:
            counts = np.zeros((self._key_sets(), n_sub, choices))
            np.add.at(counts, (key_row, sub, values), 1)
            return counts.argmax(2)

        geometry = vote(pieces.geometry, N_GEOMETRIES)
        key = {
            "rotation": geometry % 4, "flip": geometry // 4, "negpos": vote(pieces.negpos, 2),
            "channel_perm": CHANNEL_PERMUTATIONS[vote(pieces.channel_order, len(CHANNEL_PERMUTATIONS))],
            "sub_perm": sub_perm, "block_perm": block_perm,
        }
        return {name: value if name == "block_perm" or self.per_main_block else value[0] for name, value in key.items()}

    def key(self) -> dict[str, np.ndarray]:
        return {
            "rotation": self.rotation.copy(), "flip": self.flip.copy(), "negpos": self.negpos.copy(),
            "channel_perm": self.channel_perm.copy(), "sub_perm": self.sub_perm.copy(), "block_perm": self.block_perm.copy(),
        }

    def rebuild(self, **key: object) -> "_CFECipher":
        return type(self)(self.block_size, **{**self.key(), **key}, sub_block_size=self.sub_block_size)

    # -- the transform --------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        """Number of main blocks N."""
        return int(self.block_perm.shape[0])

    @property
    def n_sub(self) -> int:
        """Sub-blocks per main block S = (Mm / Ms)^2."""
        return (self.block_size // self.sub_block_size) ** 2

    def _block_maps(self, channels: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        main, sub = self.block_size, self.sub_block_size
        check_block_grid(self.n_blocks, height, width, main, "block_perm")
        ratio, plane, main_cols = main // sub, height * width, width // main
        channel, pixel = np.divmod(np.arange(channels * plane), plane)
        row, col = np.divmod(pixel, width)
        source_main = self.block_perm[(row // main) * main_cols + col // main]
        key_row = source_main if self.per_main_block else np.zeros_like(source_main)

        def entry(array: np.ndarray, *index: np.ndarray) -> np.ndarray:
            return array[(key_row, *index)] if self.per_main_block else array[index]

        in_main_row, in_main_col = row % main, col % main
        slot = (in_main_row // sub) * ratio + in_main_col // sub  # output sub-block slot i
        source_sub = entry(self.sub_perm, slot)  # transformed sub-block j that lands there
        geometry = geometry_code(entry(self.rotation, source_sub), entry(self.flip, source_sub))
        local = dihedral_source(sub)[geometry, (in_main_row % sub) * sub + in_main_col % sub]
        source_channel = entry(self.channel_perm, source_sub, channel)
        source_row = (source_main // main_cols) * main + (source_sub // ratio) * sub + local // sub
        source_col = (source_main % main_cols) * main + (source_sub % ratio) * sub + local % sub
        mask = (entry(self.negpos, source_sub) * 255).astype(np.uint8)
        return source_channel * plane + source_row * width + source_col, mask

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._block_maps(channels, height, width)[0]

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        return self._block_maps(channels, height, width)[1]

    # -- key space --------------------------------------------------------------------------
    def _key_sets(self) -> int:
        return self.n_blocks if self.per_main_block else 1

    def _per_sub_block(self, effective: bool) -> int:
        """Sub-block keys: 4 rotations x 4 flips x 2 x 3! nominally; 8 distinct geometries (1 for 1 x 1)."""
        geometries = (N_GEOMETRIES if self.sub_block_size > 1 else 1) if effective else N_ROTATIONS * N_FLIPS
        return geometries * 2 * math.factorial(3)

    def _space(self, effective: bool) -> int:
        per_set = math.factorial(self.n_sub) * self._per_sub_block(effective) ** self.n_sub
        return math.factorial(self.n_blocks) * per_set ** self._key_sets()

    def _space_log2(self, effective: bool) -> float:
        per_set = log2_factorial(self.n_sub) + self.n_sub * math.log2(self._per_sub_block(effective))
        return log2_factorial(self.n_blocks) + self._key_sets() * per_set

    def key_space(self) -> int:
        """N! (S! 192^S)^K, K = 1 (V1) or N (V2): every explicit key the construction admits."""
        return self._space(False)

    def key_space_log2(self) -> float:
        return self._space_log2(False)

    def effective_key_space(self) -> int:
        """N! (S! 96^S)^K: the 16 rotation x flip codes give 8 distinct geometries (each twice)."""
        return self._space(True)

    def effective_key_space_log2(self) -> float:
        return self._space_log2(True)

    @staticmethod
    def seeded_key_space_bound() -> int:
        """At most 2^62 distinct ciphers come out of :meth:`from_seed`: everything follows from the two
        31-bit keys K_ST and K_MS (V2's per-block keys are derived from K_ST)."""
        return 2**62

    def params(self) -> dict[str, object]:
        return {"block_size": self.block_size, "sub_block_size": self.sub_block_size, "n_blocks": self.n_blocks}


@ciphers.register("cfe_v1")
class CFEv1Cipher(_CFECipher):
    """CFE V1: one sub-key set (``[S]`` entries, ``channel_perm`` ``[S, 3]``) for every main block."""

    per_main_block = False
    version = 1
    traits = Traits(
        block_scrambling=True, within_block="dihedral", negative_positive=True, channel_shuffle=True, byte_map=True
    )


@ciphers.register("cfe_v2", "cfe")
class CFEv2Cipher(_CFECipher):
    """CFE V2: a sub-key set per main block (``[N, S]`` entries, ``channel_perm`` ``[N, S, 3]``)."""

    per_main_block = True
    version = 2
    traits = Traits(
        block_scrambling=True, within_block="dihedral", per_position_key=True, negative_positive=True,
        channel_shuffle=True, byte_map=True,
    )
