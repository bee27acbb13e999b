"""``etc_gray``'s chroma planes: pairing, assignment to Y cells and a joint local search.

Each chroma piece alone is matched to a Y cell by how its detail lines up with the luminance
(``chroma_scores`` in :mod:`attacks.extended_jigsaw`); on flat 4 x 4 chroma blocks that is weak (about
half the pieces landed right).  Two further signals help: the Cb and Cr blocks of one place
move together over the images (their block means are strongly correlated), and chroma is
smooth, so neighbours continue each other across shared edges.  After the per-cell assignment,
pairwise swaps (within and across the Cb and Cr planes) and in-place changes of geometry and
negation are taken while they lower

    chroma edge costs  -  a * alignment with the Y cell  +  b * signed Cb/Cr block-mean correlation,

with ``a`` and ``b`` in units of the start's mean edge cost, so no term's scale matters.
(Solving the chroma planes as a jigsaw from edges alone was tried: its planes had a lower edge
cost than the true ones and were wrong, so edges alone do not fix them.)
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

from attacks.puzzle import energy, grid_edges


def chroma_edges(rows: int, plane_cols: int, beside: torch.Tensor, below: torch.Tensor) -> list:
    """Edge terms of the two chroma planes side by side (``rows x 2*plane_cols``), none across the border."""
    (cells_a, cells_b, horizontal), vertical = grid_edges(rows, 2 * plane_cols, beside, below)
    keep = cells_b % (2 * plane_cols) != plane_cols
    finite = lambda c: torch.nan_to_num(c, posinf=1e30)  # noqa: E731
    return [(cells_a[keep], cells_b[keep], finite(horizontal)), (vertical[0], vertical[1], finite(vertical[2]))]


def _total(arrangements: torch.Tensor, edges: list, unary: torch.Tensor) -> torch.Tensor:
    cells = torch.arange(arrangements.shape[1])
    return energy(arrangements, edges) + unary[cells, arrangements].sum(1)


def refine_chroma(
    arrangement: torch.Tensor, edges: list, unary: torch.Tensor, per_piece: int, max_moves: int = 2000
) -> torch.Tensor:
    """Best-improvement descent over swaps and in-place state changes of ``edges + unary``.

    ``arrangement``: cell -> state (states of one piece are ``per_piece`` consecutive numbers);
    ``unary[cell, state]``: the cost of a state at a cell.
    """
    cells = arrangement.shape[0]
    first, second = torch.triu_indices(cells, cells, offset=1)
    swap_rows = torch.arange(first.shape[0])
    cell_index = torch.arange(cells).repeat_interleave(per_piece)
    change_rows = torch.arange(cells * per_piece)
    offsets = torch.arange(per_piece).repeat(cells)
    current = float(_total(arrangement.unsqueeze(0), edges, unary))
    for move in range(max_moves):
        swapped = arrangement.repeat(first.shape[0], 1)
        swapped[swap_rows, first], swapped[swap_rows, second] = arrangement[second], arrangement[first]
        changed = arrangement.repeat(cells * per_piece, 1)
        changed[change_rows, cell_index] = (arrangement[cell_index] // per_piece) * per_piece + offsets
        candidates = torch.cat([swapped, changed])
        scores = _total(candidates, edges, unary)
        best = int(scores.argmin())
        if float(scores[best]) >= current - 1e-9 * max(1.0, abs(current)):
            break
        arrangement, current = candidates[best], float(scores[best])
    return arrangement


def alignment_unary(
    score: torch.Tensor, states: torch.Tensor, per_piece: int, rows: int, plane_cols: int
) -> torch.Tensor:
    """``[2 * cells, len(states)]``: minus the alignment score of each (chroma) state at each chroma cell.

    ``score[q, l, y_cell]``: alignment of the q-th chroma piece under local transform l with a Y
    cell; ``states``: the state numbers, piece-major, of the chroma pieces in the order of ``score``.
    """
    cell = torch.arange(rows * 2 * plane_cols)
    y_cell = (cell // (2 * plane_cols)) * plane_cols + cell % plane_cols
    local = (states % per_piece) // 2
    q = torch.arange(states.shape[0]) // per_piece
    return -score[q.unsqueeze(0), local.unsqueeze(0), y_cell.unsqueeze(1)]


def pair_edges(rows: int, plane_cols: int, corr: torch.Tensor, states: torch.Tensor, per_piece: int, weight: float) -> tuple:
    """The term tying the two chroma pieces of a cell: ``weight * corr`` of their block means over the
    ciphertexts, sign-corrected for their negations (Cb and Cr of one place are anti-correlated)."""
    cell = torch.arange(rows * 2 * plane_cols).view(rows, 2 * plane_cols)
    q = torch.arange(states.shape[0]) // per_piece
    neg = states % 2
    sign = 1.0 - 2.0 * (neg.unsqueeze(1) != neg.unsqueeze(0)).double()
    return cell[:, :plane_cols].reshape(-1), cell[:, plane_cols:].reshape(-1), weight * corr[q][:, q] * sign


def block_mean_correlation(used: torch.Tensor, block: int, pieces: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[P, P]`` correlation over the ciphertexts of the block means of ``pieces`` (raster piece numbers)."""
    means = torch.cat([
        torch.nn.functional.avg_pool2d(part.double(), block).flatten(1)[:, pieces] for part in used.split(chunk)
    ])
    z = (means - means.mean(0)) / means.std(0).clamp_min(1e-9)
    return z.T @ z / max(1, z.shape[0] - 1)


def pair_pieces(corr: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``[P/2, 2]`` pieces paired greedily by the largest ``|corr|`` of their block means (the Cb and Cr
    blocks of one place move together over the images, anti-correlated along the daylight axis),
    and the share of pairs that are each other's best match (how far to trust them)."""
    strength = corr.abs().clone()
    strength.fill_diagonal_(-1.0)
    best = strength.argmax(1)
    pairs = []
    for _ in range(corr.shape[0] // 2):
        a, b = divmod(int(strength.argmax()), corr.shape[0])
        pairs.append((a, b))
        strength[[a, b], :] = -1.0
        strength[:, [a, b]] = -1.0
    mutual = sum(int(best[a]) == b and int(best[b]) == a for a, b in pairs) / max(1, len(pairs))
    return torch.tensor(pairs), mutual


def assign_cells(best: torch.Tensor, pairs: torch.Tensor | None) -> torch.Tensor:
    """``[cells, 2]`` chroma pieces (rows of ``best``) per Y cell, maximising the summed alignment
    ``best[q, cell]``: whole ``pairs`` to cells when given, else single pieces two to a cell."""
    cells = best.shape[1]
    out = torch.empty(cells, 2, dtype=torch.long)
    if pairs is not None:
        out[torch.as_tensor(linear_sum_assignment(-(best[pairs[:, 0]] + best[pairs[:, 1]]).numpy())[1])] = pairs
        return out
    pieces_at, slots = linear_sum_assignment(-torch.cat([best, best], 1).numpy())
    slot = torch.as_tensor(slots)
    out[slot % cells, slot // cells] = torch.as_tensor(pieces_at)
    return out
