"""``puzzle``: ciphertext-only statistical attack on fixed-key block + pixel scrambling.

Natural images are smooth, and a fixed key moves the same positions in every image, so
statistics pooled over many ciphertexts of one key expose the permutations (the idea behind
the jigsaw-solver attacks of Chuman & Kiya on EtC and on the seed's cipher; our method is our
own, see docs/attacks.md):

1. *Within-block shuffle K2.*  Every sub-block of every ciphertext is shuffled by the same K2.
   For each pair of ciphertext positions (s, t), the mean squared difference of their pixels over
   all sub-blocks is small when s and t were neighbours in the plain image.  Place the S
   positions on the (M/2) x (M/2) grid to minimise the summed difference over grid edges, plus
   the edges *between* the four sub-blocks of a block (their relative layout is kept by the
   cipher), which also breaks the square's 8 symmetries.
2. *Block scramble K1.*  With K2 undone, every block is a piece of a jigsaw without rotation.
   Piece compatibility (left-right and top-bottom) is the mean squared difference across the
   shared edge, averaged over all ciphertexts; the arrangement minimising the summed
   compatibility over the known grid is found by a greedy raster fill tried from every piece,
   then refined by pairwise swaps.

The estimated key is applied with the cipher's own ``decrypt``.  Both stages share one
minimiser (:func:`arrange`): an assignment of pieces to grid cells scored by edge costs.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from attacks.base import AttackConfig, CipherFamily, KeyRecoveryAttack, check_int
from harness.keys import derive_seed
from harness.progress import ProgressCallback, report
from harness.registry import attacks

#: an edge term: (cells on one side [E], cells on the other [E], cost[piece_a, piece_b])
Edges = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def energy(arrangements: torch.Tensor, edges: Edges) -> torch.Tensor:
    """Summed edge cost of arrangements ``[P, cells]`` (cell -> piece): ``[P]``."""
    total = torch.zeros(arrangements.shape[0], dtype=torch.float64, device=arrangements.device)
    for cells_a, cells_b, cost in edges:
        total += cost[arrangements[:, cells_a], arrangements[:, cells_b]].sum(1)
    return total


def descend(arrangement: torch.Tensor, edges: Edges) -> tuple[torch.Tensor, float]:
    """Best-improvement pairwise-swap descent from ``arrangement`` to a local minimum."""
    n = arrangement.shape[0]
    first, second = torch.triu_indices(n, n, offset=1, device=arrangement.device)
    rows = torch.arange(first.shape[0], device=arrangement.device)
    current = float(energy(arrangement.unsqueeze(0), edges))
    while True:
        swapped = arrangement.repeat(first.shape[0], 1)
        swapped[rows, first], swapped[rows, second] = arrangement[second], arrangement[first]
        scores = energy(swapped, edges)
        best = int(scores.argmin())
        if float(scores[best]) >= current - 1e-12 * max(1.0, abs(current)):
            return arrangement, current
        arrangement, current = swapped[best], float(scores[best])


def greedy_raster(rows: int, cols: int, left: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Raster fills of a ``rows x cols`` grid, one per starting piece: ``[n, rows*cols]``.

    Each cell takes the unused piece with the smallest cost to its left and upper neighbours
    (``left[a, b]``: cost of b right of a; ``up[a, b]``: cost of b below a).  All starts run at
    once, so the loop is over cells only.
    """
    n = left.shape[0]
    starts = torch.arange(n, device=left.device)
    placed = torch.empty(n, rows * cols, dtype=torch.long, device=left.device)
    used = torch.zeros(n, n, dtype=torch.bool, device=left.device)
    placed[:, 0] = starts
    used[starts, starts] = True
    for cell in range(1, rows * cols):
        row, col = divmod(cell, cols)
        cost = torch.zeros(n, n, dtype=left.dtype, device=left.device)
        if col:
            cost += left[placed[:, cell - 1]]
        if row:
            cost += up[placed[:, cell - cols]]
        choice = cost.masked_fill(used, float("inf")).argmin(1)
        placed[:, cell] = choice
        used[starts, choice] = True
    return placed


def grid_edges(rows: int, cols: int, horizontal: torch.Tensor, vertical: torch.Tensor) -> Edges:
    """Edge terms of a plain ``rows x cols`` grid of cells numbered in raster order."""
    cells = torch.arange(rows * cols, device=horizontal.device).view(rows, cols)
    return [
        (cells[:, :-1].reshape(-1), cells[:, 1:].reshape(-1), horizontal),
        (cells[:-1, :].reshape(-1), cells[1:, :].reshape(-1), vertical),
    ]


def dihedral(side: int, device: torch.device) -> list[torch.Tensor]:
    """The 8 symmetries of a ``side x side`` grid as cell permutations (gather convention)."""
    cells = torch.arange(side * side, device=device).view(side, side)
    out = []
    for turns in range(4):
        rotated = torch.rot90(cells, turns)
        out += [rotated.reshape(-1), rotated.flip(1).reshape(-1)]
    return out


class SquaredDistance:
    """Mean squared difference between the rows of two feature streams, accumulated over chunks.

    ``result()[a, b]`` is the mean over all features added of ``(x_a - y_b)^2``, computed from
    Gram matrices, so the ciphertexts can be streamed in chunks of any size.
    """

    def __init__(self) -> None:
        self.cross: torch.Tensor | float = 0.0
        self.left: torch.Tensor | float = 0.0
        self.right: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One chunk: ``x`` ``[n_x, F]`` and ``y`` ``[n_y, F]`` with matching features."""
        x, y = x.double(), y.double()
        self.cross = self.cross + x @ y.T
        self.left = self.left + (x * x).sum(1)
        self.right = self.right + (y * y).sum(1)
        self.count += x.shape[1]

    def result(self) -> torch.Tensor:
        assert isinstance(self.cross, torch.Tensor), "add at least one chunk"
        return (self.left.unsqueeze(1) + self.right - 2 * self.cross).clamp_min(0) / self.count


def shifts(arrangement: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """All cyclic row/column shifts of a grid arrangement: ``[rows*cols, rows*cols]``.

    A raster fill started from a piece that is not the corner yields a correct but shifted
    picture that no single swap improves; shifting it back is one move.
    """
    grid = arrangement.view(rows, cols)
    return torch.stack([grid.roll((dr, dc), (0, 1)).reshape(-1) for dr in range(rows) for dc in range(cols)])


def arrange(
    rows: int, cols: int, edges: Edges, left: torch.Tensor, up: torch.Tensor, restarts: list[torch.Tensor]
) -> torch.Tensor:
    """Minimise ``edges`` over arrangements: greedy raster starts plus ``restarts``, then swaps and shifts."""
    fills = greedy_raster(rows, cols, left, up)
    candidates = [fills[energy(fills, edges).argmin()], *restarts]
    best, best_energy = min((descend(c.clone(), edges) for c in candidates), key=lambda r: r[1])
    while True:
        moved = shifts(best, rows, cols)
        scores = energy(moved, edges)
        index = int(scores.argmin())
        if float(scores[index]) >= best_energy - 1e-12 * max(1.0, abs(best_energy)):
            return best
        best, best_energy = descend(moved[index], edges)


def spectral_layout(distance: torch.Tensor, side: int, neighbours: int = 4) -> torch.Tensor:
    """Place S = side^2 items on a square grid from their pairwise distances: ``[S]`` cell -> item.

    Laplacian eigenmap of the nearest-neighbour graph: the two smallest non-trivial eigenvectors
    of a grid graph span its two axes (cosines along rows and columns) in some rotation; the
    rotation is the angle at which the projected values fall into ``side`` tight groups.  Items
    are then ranked into rows along one axis and into columns along the other.  The symmetric
    distances fix the layout only up to the square's 8 symmetries.
    """
    n = distance.shape[0]
    off_diagonal = distance + torch.diag(torch.full((n,), float("inf"), dtype=distance.dtype, device=distance.device))
    near, index = off_diagonal.topk(min(neighbours, n - 1), dim=1, largest=False)
    weights = torch.zeros_like(distance).scatter_(1, index, torch.exp(-near / near[:, 0].median().clamp_min(1e-12)))
    weights = torch.maximum(weights, weights.T)
    laplacian = torch.diag(weights.sum(1)) - weights
    axes = torch.linalg.eigh(laplacian).eigenvectors[:, 1:3]
    angles = torch.arange(180, dtype=distance.dtype, device=distance.device) * torch.pi / 180
    projected = axes @ torch.stack([angles.cos(), angles.sin()])  # [S, angles]
    grouped = projected.sort(0).values.view(side, side, -1)
    angle = angles[(grouped.var(1).sum(0) / projected.var(0)).argmin()]
    along_rows = axes @ torch.stack([angle.cos(), angle.sin()])
    along_cols = axes @ torch.stack([-angle.sin(), angle.cos()])
    row = torch.empty(n, dtype=torch.long, device=distance.device)
    row[along_rows.argsort()] = torch.arange(n, device=distance.device) // side
    column_rank = along_cols.argsort().argsort()
    return (row * n + column_rank).argsort()


def subblock_statistics(chunks: Iterator[torch.Tensor], block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances between sub-block positions, pooled over ciphertext chunks ``[n, C, H, W]``.

    ``within[s, t]``: positions s and t of the same sub-block; ``across_h[s, t]``: s in a
    sub-block and t in the sub-block to its right (same block); ``across_v``: t in the one below.
    """
    half = block // 2
    within, across_h, across_v = SquaredDistance(), SquaredDistance(), SquaredDistance()
    for chunk in chunks:
        n, channels, height, width = chunk.shape
        grid = chunk.view(n, channels, height // block, 2, half, width // block, 2, half)
        subs = grid.permute(3, 6, 4, 7, 0, 1, 2, 5).reshape(2, 2, half * half, -1)  # slot row, col, S, samples

        def flat(part: torch.Tensor) -> torch.Tensor:  # [..., S, F] -> [S, everything else]
            return part.movedim(-2, 0).reshape(half * half, -1)

        within.add(flat(subs), flat(subs))
        across_h.add(flat(subs[:, 0]), flat(subs[:, 1]))
        across_v.add(flat(subs[0]), flat(subs[1]))
    return within.result(), across_h.result(), across_v.result()


def estimate_pixel_perm(
    within: torch.Tensor, across_h: torch.Tensor, across_v: torch.Tensor, restarts: int, generator: torch.Generator
) -> torch.Tensor:
    """K2 as ``sigma[cell] =`` the ciphertext position that belongs at plain sub-block ``cell``.

    Starts: the spectral layout in its 8 orientations (the cross-sub-block edges pick one), the
    greedy raster fill and ``restarts`` random arrangements; each descends by swaps.
    """
    positions = within.shape[0]
    half = round(positions**0.5)
    if positions == 1:
        return torch.zeros(1, dtype=torch.long, device=within.device)
    cells = torch.arange(positions, device=within.device).view(half, half)
    edges = grid_edges(half, half, within, within) + [
        (cells[:, -1], cells[:, 0], across_h),  # right column of a sub-block | left column of the next
        (cells[-1, :], cells[0, :], across_v),  # bottom row | top row of the sub-block below
    ]
    layout = spectral_layout(within, half)
    oriented = torch.stack([layout[symmetry] for symmetry in dihedral(half, within.device)])
    starts = [oriented[energy(oriented, edges).argmin()]]
    starts += [torch.randperm(positions, generator=generator).to(within.device) for _ in range(restarts)]
    return arrange(half, half, edges, within, within, starts)


def block_statistics(chunks: Iterator[torch.Tensor], block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge costs between K2-corrected blocks, pooled over chunks ``[n, C, H, W]``.

    ``beside[a, b]``: mean squared difference between a's right column and b's left column;
    ``below[a, b]``: a's bottom row against b's top row.  (Extrapolating each side's gradient
    across the edge, as some jigsaw solvers do, recovered fewer blocks on small 4 x 4 pieces.)
    """
    beside, below = SquaredDistance(), SquaredDistance()
    for chunk in chunks:
        n, channels, height, width = chunk.shape
        grid = chunk.view(n, channels, height // block, block, width // block, block)
        blocks = grid.permute(2, 4, 0, 1, 3, 5).reshape(-1, n, channels, block, block)  # [N, n, C, M, M]
        count = blocks.shape[0]
        beside.add(blocks[..., -1].reshape(count, -1), blocks[..., 0].reshape(count, -1))
        below.add(blocks[..., -1, :].reshape(count, -1), blocks[..., 0, :].reshape(count, -1))
    return beside.result(), below.result()


def estimate_block_perm(beside: torch.Tensor, below: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """K1 as ``pi[cell] =`` the ciphertext block that belongs at plain block ``cell``."""
    return arrange(rows, cols, grid_edges(rows, cols, beside, below), beside, below, [])


@attacks.register("puzzle")
class PuzzleAttack(KeyRecoveryAttack):
    """Estimate K2 then K1 of a fixed key from many ciphertexts (docs/attacks.md: statistical attacks)."""

    uses_victim_ciphertexts = True
    statistical = True

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        restarts: int = 4,
        max_ciphertexts: int = 2000,
        chunk: int = 64,
    ) -> None:
        super().__init__(seed=seed, device=device)
        for name, value, minimum in (("restarts", restarts, 0), ("max_ciphertexts", max_ciphertexts, 1), ("chunk", chunk, 1)):
            check_int(name, value, minimum)
        self.restarts, self.max_ciphertexts, self.chunk = restarts, max_ciphertexts, chunk

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        if family.per_image_key:
            return "every image has its own key: there are no shared statistics to pool"
        traits = family.traits
        shared_shuffle = traits.within_block == "pixel_shuffle" and not traits.per_position_key
        values_kept = not (traits.value_bijection or traits.channel_shuffle) and traits.colour_space == "rgb"
        if not (traits.identity or (shared_shuffle and values_kept)):
            return (
                f"{family.canonical_name} is not block scrambling with one pixel shuffle shared by all sub-blocks "
                "(nibble keys: nibble; dihedral blocks: extended_jigsaw)"
            )
        return super().applies_to(family)

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        assert self.family is not None and victim is not None
        template = self.family.template
        if self.family.traits.identity:
            self.key, self.recovered_cipher = {}, template
            self.note = "nothing to estimate: the identity cipher has no key"
            return
        block = template.block_size
        used = victim[: self.max_ciphertexts]
        n, _, height, width = used.shape
        rows, cols = height // block, width // block

        def chunks(transform=lambda x: x) -> Iterator[torch.Tensor]:
            return (transform(part).double() for part in used.split(self.chunk))

        generator = torch.Generator().manual_seed(derive_seed(self.seed, "puzzle", "restarts"))
        sigma = estimate_pixel_perm(*subblock_statistics(chunks(), block), self.restarts, generator)
        pixel_perm = torch.argsort(sigma).cpu().numpy()
        report(progress, 1, 2, "puzzle: within-block shuffle estimated")
        # undo the estimated K2 inside every sub-block, then solve the block jigsaw
        unshuffle = template.rebuild(block_perm=np.arange(rows * cols), pixel_perm=pixel_perm).decrypt
        pi = estimate_block_perm(*block_statistics(chunks(unshuffle), block), rows, cols)
        report(progress, 2, 2, "puzzle: blocks reassembled")
        self.key = {"block_perm": torch.argsort(pi).cpu().numpy(), "pixel_perm": pixel_perm}
        self.recovered_cipher = template.rebuild(**self.key)
        self.note = f"K2 and K1 estimated from {n} ciphertexts of one key"
