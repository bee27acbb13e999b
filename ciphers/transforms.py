"""Public building blocks of the comparison ciphers that attacks reuse: the colour-order coding, the
dihedral block geometries and the full-range YCbCr transform.  Public so that an attack never
imports a private module or a cipher plugin for them; the registry imports this module like the
plugins, and it registers nothing.
"""

from __future__ import annotations

import itertools

import numpy as np

from ciphers._colour import rgb_to_ycbcr, ycbcr_to_rgb

__all__ = ["CHANNEL_PERMUTATIONS", "N_GEOMETRIES", "dihedral_source", "rgb_to_ycbcr", "ycbcr_to_rgb"]

#: ``CHANNEL_PERMUTATIONS[c]`` is permutation ``c`` (0..5) of docs/ciphers.md: output channel j = input channel p[j]
CHANNEL_PERMUTATIONS = np.array(list(itertools.permutations(range(3))), dtype=np.int64)

N_GEOMETRIES = 8


def dihedral_source(block_size: int) -> np.ndarray:
    """``[8, M*M]``: raster position inside an M x M block that feeds each output position, per geometry.

    Geometry ``g`` rotates the block counter-clockwise ``g % 4`` quarter turns (numpy
    ``rot90(k=g % 4)`` in the (row, column) plane) and then, if ``g >= 4``, reverses the columns.
    """
    m = block_size
    g = np.arange(N_GEOMETRIES)[:, None]
    row, col = np.divmod(np.arange(m * m), m)
    src_row = np.broadcast_to(row, (N_GEOMETRIES, m * m))
    src_col = np.where(g >= 4, m - 1 - col, col)  # undo the mirror, the last step
    for turn in range(1, 4):  # undo the rotations: rot90 maps out[r, c] = in[c, m - 1 - r]
        rotate = g % 4 >= turn
        src_row, src_col = np.where(rotate, src_col, src_row), np.where(rotate, m - 1 - src_row, src_col)
    return src_row * m + src_col
