"""Pieces: the square units a ``within_block="dihedral"`` cipher transforms in place and moves whole.

EtC's piece is its block; CFE's is its sub-block (sub-blocks move inside a main block and main
blocks move, which together is one permutation of the sub-blocks).  Cut into P x P pieces
(:attr:`ciphers.base.Cipher.piece_size`), such a cipher's gather + XOR says, for every ciphertext
piece, which plain piece it holds and which of the 8 geometries x colour orders x negation it
applied: a :class:`PieceMap`.  Every such cipher turns a piece map back into its own key
(``key_from_pieces``), so an attack that solves the pieces (``extended_jigsaw``) needs no
knowledge of the key's layout.  Public like :mod:`ciphers.transforms`; it registers nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ciphers.transforms import CHANNEL_PERMUTATIONS, N_GEOMETRIES, dihedral_source

__all__ = ["PieceMap", "forward_table", "pieces_of_map"]


@dataclass(frozen=True)
class PieceMap:
    """Per ciphertext piece (raster over the ``grid`` of pieces): the plain piece it holds
    (``source``, raster index), the geometry code applied (``dihedral_source``'s 0..7), the colour
    order (row of ``CHANNEL_PERMUTATIONS``; 0 for one channel) and the negation bit."""

    source: np.ndarray
    geometry: np.ndarray
    channel_order: np.ndarray
    negpos: np.ndarray
    grid: tuple[int, int]


def forward_table(channels: int, piece: int) -> dict[tuple[int, ...], tuple[int, int]]:
    """Local gather of each (geometry, colour order) over a ``[C, P, P]`` piece -> the pair
    (colour order -1 for one channel; the first pair wins where geometries coincide, P = 1)."""
    mm = piece * piece
    source = dihedral_source(piece)
    orders = range(len(CHANNEL_PERMUTATIONS)) if channels == 3 else (None,)
    table: dict[tuple[int, ...], tuple[int, int]] = {}
    for g in range(N_GEOMETRIES):
        for c in orders:
            perm = CHANNEL_PERMUTATIONS[c] if c is not None else [0]
            key = tuple(int(perm[ch]) * mm + int(s) for ch in range(channels) for s in source[g])
            table.setdefault(key, (g, -1 if c is None else c))
    return table


def pieces_of_map(
    index: np.ndarray, mask: np.ndarray, shape: tuple[int, int, int], piece: int, *, exact: bool = True
) -> PieceMap:
    """The :class:`PieceMap` of an encryption gather ``index`` (ciphertext element <- plain element)
    and XOR ``mask`` over ``shape`` = (C, H, W); ValueError naming ``index`` when the map does not
    move whole P x P pieces under one geometry, colour order and negation each.

    ``exact=False`` reads a map that is only nearly a piece map (one read off noisy data) instead:
    each ciphertext piece's entries vote for its source piece and negation, and its geometry x
    colour order is the one whose gather most of its entries agree with (the same map when exact)."""
    channels, height, width = shape
    if height % piece or width % piece:
        raise ValueError(f"shape {shape} is not divisible by the piece size {piece}")
    rows, cols = height // piece, width // piece
    n_pieces, plane = rows * cols, height * width

    def by_piece(values: np.ndarray) -> np.ndarray:  # [C*H*W] -> [pieces, C*P*P]
        grid = np.asarray(values).reshape(channels, rows, piece, cols, piece)
        return grid.transpose(1, 3, 0, 2, 4).reshape(n_pieces, -1)

    idx, msk = by_piece(index), by_piece(mask)
    ch, pix = np.divmod(idx, plane)
    row, col = np.divmod(pix, width)
    source = (row // piece) * cols + col // piece
    local = ch * piece * piece + (row % piece) * piece + col % piece
    table = forward_table(channels, piece)
    if not exact:
        return _voted_pieces(source, local, msk, table, (rows, cols))
    if not ((source == source[:, :1]).all() and (msk == msk[:, :1]).all() and set(np.unique(msk)) <= {0, 255}):
        raise ValueError(f"index does not move whole {piece} x {piece} pieces with one negation each")
    try:
        pairs = np.array([table[tuple(row_.tolist())] for row_ in local], dtype=np.int64)
    except KeyError:
        raise ValueError(f"index applies a transform inside a {piece} x {piece} piece that is no geometry x colour order") from None
    return PieceMap(
        source=source[:, 0].astype(np.int64), geometry=pairs[:, 0], channel_order=np.maximum(pairs[:, 1], 0),
        negpos=(msk[:, 0] != 0).astype(np.int64), grid=(rows, cols),
    )


def _voted_pieces(
    source: np.ndarray, local: np.ndarray, mask: np.ndarray, table: dict[tuple[int, ...], tuple[int, int]], grid: tuple[int, int]
) -> PieceMap:
    """:func:`pieces_of_map`'s ``exact=False``: per ciphertext piece (row), the majority source piece
    and negation, and the (geometry, colour order) whose local gather agrees with most entries."""
    n_pieces = source.shape[0]
    counts = np.zeros((n_pieces, grid[0] * grid[1]), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n_pieces), source.shape[1]), source.ravel()), 1)
    gathers = np.array(list(table), dtype=np.int64)  # [transforms, C*P*P], in the table's order
    agreement = (local[:, None, :] == gathers[None]).sum(2)
    pairs = np.array(list(table.values()), dtype=np.int64)[agreement.argmax(1)]
    return PieceMap(
        source=counts.argmax(1).astype(np.int64), geometry=pairs[:, 0], channel_order=np.maximum(pairs[:, 1], 0),
        negpos=(2 * (mask != 0).sum(1) > mask.shape[1]).astype(np.int64), grid=grid,
    )
