"""``extended_jigsaw``: ciphertext-only key recovery for fixed-key EtC (``etc``, ``etc_gray``).

EtC transforms the block at every position with its own (geometry, negative-positive, colour
order) and then scrambles the blocks; the key is the same for every image, so statistics pooled
over many ciphertexts expose it (the extended jigsaw of Chuman & Kiya; the method here is our own):

1. *Colour order, up to R <-> B* (``etc``).  In natural images G is the channel most correlated
   with the other two; per ciphertext block position, the channel whose summed correlation with
   the others (pooled over all ciphertexts and pixels) is largest is taken as G, and the block's
   channels are put in the order (a, G, b).  Negation does not change correlations.
2. *Extended jigsaw.*  Every piece may still need one of L = 8 geometries (x 2 for swapping the
   outer channels) and a negation: S = 2 N L piece states.  Edge costs (mean squared difference
   across a shared edge, pooled over all ciphertexts) are computed once for all directed edges
   of all pieces from one streamed Gram matrix; negation only enters as a relative bit, with the
   linear sums.  The grid is filled greedily in raster order from every state, the best fill is
   refined by cell swaps, state changes in place and cyclic shifts (the moves of
   :mod:`attacks.puzzle`, whose ``energy``/``descend``/``grid_edges``/``shifts`` it reuses).
3. *Global symmetry.*  Edge costs depend only on relative transforms, so the solution is fixed
   only up to one whole-image symmetry (rotation/flip of the square grid, negation, R <-> B).  A
   linear discriminant (Gaussian classes, shared covariance) fitted to the attacker's own images, each shown in all the
   symmetric variants, scores ``log p(upright | variant)``; the variant with the largest total
   over all victim ciphertexts is chosen (maximum likelihood under the attacker's image prior).
   Its quality depends on the attacker's images being of the same kind as the victim's.

``etc_gray`` puts Y, Cb and Cr side by side as one gray image of 3N blocks.  Pieces are split
into luminance and chroma by their pooled variance (chroma is smooth and near 128); the N
luminance pieces are solved as a jigsaw on the Y plane, the 2N chroma pieces as one jigsaw on
the Cb | Cr planes (no edges across the plane border), and the global symmetry of the Y plane
is chosen as above on the restored images.  Chroma carries little edge signal, so its recovery
is much weaker (see the report numbers in ``extra``).

The recovered key is applied with the cipher's own ``decrypt``.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
import torch

from attacks.base import Attack, AttackConfig, CipherFamily
from attacks.puzzle import descend, energy, grid_edges, shifts
from ciphers._common import CHANNEL_PERMUTATIONS
from ciphers.etc import dihedral_source
from harness.progress import ProgressCallback, report
from harness.registry import attacks


# -- local transforms -----------------------------------------------------------------------
def local_maps(channels: int, block: int, swap: bool) -> torch.Tensor:
    """``[L, C*M*M]`` gathers (output element <- input element) of the in-place transforms tried.

    L = 8 geometries, times 2 when ``swap`` (outer channels exchanged: (a, G, b) -> (b, G, a)).
    """
    mm = block * block
    geometries = torch.from_numpy(dihedral_source(block))  # [8, M*M]
    orders = [[0, 1, 2], [2, 1, 0]] if swap else [list(range(channels))]
    maps = []
    for order in orders:
        for g in range(8):
            maps.append(torch.cat([order[ch] * mm + geometries[g] for ch in range(channels)]))
    return torch.stack(maps)


def _side_indices(channels: int, block: int) -> dict[str, torch.Tensor]:
    """Elements of the right column / left column / bottom row / top row of a ``[C, M, M]`` block."""
    grid = torch.arange(channels * block * block).view(channels, block, block)
    return {
        "right": grid[:, :, -1].reshape(-1), "left": grid[:, :, 0].reshape(-1),
        "bottom": grid[:, -1, :].reshape(-1), "top": grid[:, 0, :].reshape(-1),
    }


def _side_as_right(maps: torch.Tensor, sides: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """For every transform l and side, the transform l' whose right column lists the same elements."""
    right = {tuple(m[sides["right"]].tolist()): index for index, m in enumerate(maps)}
    return {
        name: torch.tensor([right[tuple(m[sides[name]].tolist())] for m in maps])
        for name in ("right", "left", "bottom", "top")
    }


# -- statistics -----------------------------------------------------------------------------
def _pieces(chunk: torch.Tensor, block: int) -> torch.Tensor:
    """``[n, C, H, W]`` -> ``[N, n, C*M*M]`` pieces in raster order."""
    n, channels, height, width = chunk.shape
    grid = chunk.view(n, channels, height // block, block, width // block, block)
    return grid.permute(2, 4, 0, 1, 3, 5).reshape(-1, n, channels * block * block)


def green_channel(chunks: Iterator[torch.Tensor], block: int) -> torch.Tensor:
    """Per piece, the channel most correlated with the other two (pooled): ``[N]``."""
    s1: torch.Tensor | float = 0.0
    s2: torch.Tensor | float = 0.0
    count = 0
    for chunk in chunks:
        pieces = _pieces(chunk, block)  # [N, n, 3*M*M]
        n_pieces, n = pieces.shape[:2]
        values = pieces.view(n_pieces, n, 3, -1).permute(0, 2, 1, 3).reshape(n_pieces, 3, -1) - 128.0
        s1 = s1 + values.sum(-1)
        s2 = s2 + values @ values.transpose(1, 2)
        count += values.shape[-1]
    mean = s1 / count
    cov = s2 / count - mean.unsqueeze(2) * mean.unsqueeze(1)
    std = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-9).sqrt()
    corr = cov / (std.unsqueeze(2) * std.unsqueeze(1))
    return (corr.sum(2) - 1).argmax(1)


class EdgeGram:
    """Gram matrix and sums of the right columns of every piece under every local transform."""

    def __init__(self) -> None:
        self.gram: torch.Tensor | float = 0.0
        self.linear: torch.Tensor | float = 0.0
        self.square: torch.Tensor | float = 0.0
        self.features = 0

    def add(self, rights: torch.Tensor) -> None:  # [rows, F]
        rights = rights.double()
        self.gram = self.gram + rights @ rights.T
        self.linear = self.linear + rights.sum(1)
        self.square = self.square + (rights * rights).sum(1)
        self.features += rights.shape[1]

    def distances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean squared edge difference ``[rows, rows]``: same polarity, and one side negated."""
        assert isinstance(self.gram, torch.Tensor), "add at least one chunk"
        sq = self.square.unsqueeze(1) + self.square
        same = (sq - 2 * self.gram).clamp_min(0) / self.features
        lin = self.linear.unsqueeze(1) + self.linear
        flipped = (255.0**2 * self.features - 510 * lin + sq + 2 * self.gram).clamp_min(0) / self.features
        return same, flipped


def state_costs(
    same: torch.Tensor, flipped: torch.Tensor, n_pieces: int, as_right: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``beside[a, b]``, ``below[a, b]`` over states ``a = (piece, l, neg)`` flattened in that order."""
    n_local = as_right["right"].shape[0]
    piece = torch.arange(n_pieces).repeat_interleave(2 * n_local)
    local = torch.arange(n_local).repeat_interleave(2).repeat(n_pieces)
    neg = torch.arange(2).repeat(n_pieces * n_local)
    relative = neg.unsqueeze(1) != neg.unsqueeze(0)

    def cost(first: str, second: str) -> torch.Tensor:
        rows = piece * n_local + as_right[first][local]
        cols = piece * n_local + as_right[second][local]
        out = torch.where(relative, flipped[rows][:, cols], same[rows][:, cols])
        return out.masked_fill(piece.unsqueeze(1) == piece.unsqueeze(0), float("inf"))

    return cost("right", "left"), cost("bottom", "top")


# -- the grid solver -------------------------------------------------------------------------
def greedy_states(
    rows: int, cols: int, beside: torch.Tensor, below: torch.Tensor, per_piece: int, starts: torch.Tensor,
    allowed: torch.Tensor | None = None, open_left: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raster fills over piece states (``per_piece`` consecutive states per piece), one per start.

    ``allowed`` ``[cells, S]`` restricts which states a cell may take; ``open_left`` ``[cells]``
    marks cells whose left neighbour is not an edge (a plane border).
    """
    n_states = beside.shape[0]
    n_pieces = n_states // per_piece
    n_starts = starts.shape[0]
    placed = torch.empty(n_starts, rows * cols, dtype=torch.long)
    used = torch.zeros(n_starts, n_pieces, dtype=torch.bool)
    every = torch.arange(n_starts)
    placed[:, 0] = starts
    used[every, starts // per_piece] = True
    beside = torch.nan_to_num(beside.float(), posinf=1e30)
    below = torch.nan_to_num(below.float(), posinf=1e30)
    for cell in range(1, rows * cols):
        row, col = divmod(cell, cols)
        cost = torch.zeros(n_starts, n_states, dtype=beside.dtype)
        if col and (open_left is None or not bool(open_left[cell])):
            cost += beside[placed[:, cell - 1]]
        if row:
            cost += below[placed[:, cell - cols]]
        blocked = used.repeat_interleave(per_piece, 1)
        if allowed is not None:
            blocked = blocked | ~allowed[cell]
        choice = cost.masked_fill(blocked, float("inf")).argmin(1)
        placed[:, cell] = choice
        used[every, choice // per_piece] = True
    return placed


def refine(arrangement: torch.Tensor, edges, per_piece: int, rows: int, cols: int, allowed=None) -> tuple[torch.Tensor, float]:
    """Alternate swap descent, in-place state changes and cyclic shifts until nothing improves."""
    arrangement, current = descend(arrangement.clone(), edges)
    cells = arrangement.shape[0]
    offsets = torch.arange(per_piece)
    while True:
        improved = False
        # every cell tries every state of its own piece
        base = (arrangement // per_piece) * per_piece
        trial = arrangement.repeat(cells * per_piece, 1)
        rows_index = torch.arange(cells * per_piece)
        cell_index = torch.arange(cells).repeat_interleave(per_piece)
        trial[rows_index, cell_index] = base[cell_index] + offsets.repeat(cells)
        if allowed is not None:
            ok = allowed[cell_index, trial[rows_index, cell_index]]
            trial = trial[ok]
        scores = energy(trial, edges)
        best = int(scores.argmin())
        if float(scores[best]) < current - 1e-9 * max(1.0, abs(current)):
            arrangement, current = descend(trial[best], edges)
            improved = True
        if allowed is None:
            moved = shifts(arrangement, rows, cols)
            scores = energy(moved, edges)
            best = int(scores.argmin())
            if float(scores[best]) < current - 1e-9 * max(1.0, abs(current)):
                arrangement, current = descend(moved[best], edges)
                improved = True
        if not improved:
            return arrangement, current


def solve_grid(
    rows: int, cols: int, beside: torch.Tensor, below: torch.Tensor, per_piece: int, top: int,
    allowed: torch.Tensor | None = None, open_left: torch.Tensor | None = None,
) -> torch.Tensor:
    """cell -> state minimising the summed edge costs (greedy fills from every state, then refine)."""
    edges = grid_edges(rows, cols, beside, below)
    if open_left is not None:  # drop the horizontal edges that cross a plane border
        cells_a, cells_b, cost = edges[0]
        keep = ~open_left[cells_b]
        edges = [(cells_a[keep], cells_b[keep], cost), edges[1]]
    finite_edges = [(a, b, torch.nan_to_num(c, posinf=1e30)) for a, b, c in edges]
    # whole-image negation and R <-> B map a fill onto an equally good one: start from
    # positive, unswapped states only (the first 8 local transforms, negation bit 0)
    states = torch.arange(beside.shape[0])
    starts = states[((states % per_piece) < 16) & (states % 2 == 0)]
    if allowed is not None:
        starts = starts[allowed[0, starts]]
    fills = torch.cat([
        greedy_states(rows, cols, beside, below, per_piece, part, allowed, open_left) for part in starts.split(1024)
    ])
    scores = energy(fills, finite_edges)
    order = scores.argsort()[:top]
    results = [refine(fills[i], finite_edges, per_piece, rows, cols, allowed) for i in order]
    return min(results, key=lambda r: r[1])[0]


# -- global symmetry prior -------------------------------------------------------------------
def symmetries(channels: int, square: bool) -> list[tuple[int, int, int, int]]:
    """Whole-image symmetries (quarter turns, mirror, R <-> B, negation) left by the jigsaw."""
    turns = range(4) if square else (0, 2)
    swaps = (0, 1) if channels == 3 else (0,)
    return list(itertools.product(turns, (0, 1), swaps, (0, 1)))


def apply_symmetry(images: torch.Tensor, symmetry: tuple[int, int, int, int], negate: bool = True) -> torch.Tensor:
    turns, mirror, swap, neg = symmetry
    out = torch.rot90(images, turns, dims=(-2, -1))
    if mirror:
        out = out.flip(-1)
    if swap:
        out = out[..., [2, 1, 0], :, :]
    if neg and negate:
        out = 255 - out
    return out


def prior_features(images: torch.Tensor) -> torch.Tensor:
    """Symmetry-sensitive features: 8 x 8 thumbnails, channel value tails, row and column profiles."""
    x = images.float() / 255.0
    thumb = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)
    levels = (images.flatten(2).long() * 8) // 256  # eighths of the range
    hist = torch.nn.functional.one_hot(levels, 8).float().mean(2)[..., 1:].flatten(1)  # [B, C * 7]
    rows = x.mean(-1).flatten(1)  # row profile (light from above, sky at the top)
    cols = x.mean(-2).flatten(1)
    return torch.cat([thumb, hist, rows, cols], 1)


class SymmetryPrior:
    """Which symmetry was applied to an image: linear discriminant analysis on :func:`prior_features`.

    Every attacker image is shown in every variant of ``group``; each variant is a Gaussian class
    with its own mean and a shared (ridge-regularised) covariance.  ``upright_log_likelihood``
    is the summed log posterior of the identity class (equal class priors).
    """

    def __init__(self, images: torch.Tensor, group: list, ridge: float = 1e-2) -> None:
        self.group = group
        feats = torch.stack([prior_features(apply_symmetry(images, s)) for s in group]).double()  # [K, n, F]
        self.means = feats.mean(1)
        centred = (feats - self.means.unsqueeze(1)).reshape(-1, feats.shape[-1])
        cov = centred.T @ centred / centred.shape[0]
        cov = cov + ridge * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        self.precision_means = torch.linalg.solve(cov, self.means.T)  # [F, K]
        self.offsets = -0.5 * (self.means * self.precision_means.T).sum(1)

    def upright_log_likelihood(self, images: torch.Tensor) -> float:
        logits = prior_features(images).double() @ self.precision_means + self.offsets
        return float(torch.log_softmax(logits, 1)[:, 0].sum())


# -- key bookkeeping -------------------------------------------------------------------------
def forward_table(channels: int, block: int) -> dict[tuple[int, ...], tuple[int, int]]:
    """Local forward map of each (geometry, colour order) as the cipher defines it -> the pair."""
    mm = block * block
    source = dihedral_source(block)
    orders = range(6) if channels == 3 else (None,)
    table = {}
    for g in range(8):
        for c in orders:
            perm = CHANNEL_PERMUTATIONS[c] if c is not None else [0]
            key = tuple(int(perm[ch]) * mm + int(s) for ch in range(channels) for s in source[g])
            table.setdefault(key, (g, -1 if c is None else c))
    return table


def key_from_maps(index: np.ndarray, mask: np.ndarray, channels: int, height: int, width: int, block: int) -> dict:
    """The EtC key whose encryption gather is ``index`` (cipher elem <- plain elem) with XOR ``mask``."""
    cols = width // block
    n_blocks = (height // block) * cols
    plane = height * width
    idx = index.reshape(channels, height // block, block, cols, block).transpose(1, 3, 0, 2, 4).reshape(n_blocks, -1)
    msk = mask.reshape(channels, height // block, block, cols, block).transpose(1, 3, 0, 2, 4).reshape(n_blocks, -1)
    ch, pix = np.divmod(idx, plane)
    row, col = np.divmod(pix, width)
    source = (row // block) * cols + col // block
    local = ch * block * block + (row % block) * block + col % block
    table = forward_table(channels, block)
    geometry, negpos = np.zeros(n_blocks, np.int64), np.zeros(n_blocks, np.int64)
    channel_perm = np.zeros(n_blocks, np.int64)
    block_perm = source[:, 0].copy()
    for j in range(n_blocks):
        s = block_perm[j]
        geometry[s], c = table[tuple(local[j].tolist())]
        channel_perm[s] = max(c, 0)
        negpos[s] = int(msk[j, 0] != 0)
    key = {"geometry": geometry, "negpos": negpos, "block_perm": block_perm}
    if channels == 3:
        key["channel_perm"] = channel_perm
    return key


@attacks.register("extended_jigsaw", "etc_jigsaw")
class ExtendedJigsawAttack(Attack):
    """Recover a fixed EtC key (block order, geometry, negation, colour order) from ciphertexts."""

    uses_victim_ciphertexts = True
    restores_positions = True

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        max_ciphertexts: int = 5000,
        chunk: int = 128,
        refine_top: int = 4,
        prior_images: int = 500,
    ) -> None:
        super().__init__(seed=seed, device=device)
        for name, value, minimum in (
            ("max_ciphertexts", max_ciphertexts, 1), ("chunk", chunk, 1), ("refine_top", refine_top, 1),
            ("prior_images", prior_images, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        self.max_ciphertexts, self.chunk, self.refine_top, self.prior_images = max_ciphertexts, chunk, refine_top, prior_images
        self.key: dict[str, np.ndarray] | None = None
        self.recovered_cipher = None

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        if family.per_image_key:
            return "every image has its own key: there are no shared statistics to pool"
        traits = family.template.traits
        if traits.within_block != "dihedral":
            return f"within-block movement is {traits.within_block!r}, not per-block dihedral geometries"
        return super().applies_to(family)

    # -- fitting ------------------------------------------------------------------------
    def _fit(self, attacker_images, config: AttackConfig, progress: ProgressCallback | None, *, victim, pairs) -> None:
        assert self.family is not None and self.layout is not None and victim is not None
        template = self.family.template
        block = template.block_size
        used = self.layout.unview(victim[: self.max_ciphertexts].cpu()).contiguous()
        gray = used.shape[1] == 1 and self.layout.kind == "planes"
        n, channels, height, width = used.shape
        rows, cols = height // block, width // block
        n_pieces = rows * cols

        def chunks(transform=lambda x: x) -> Iterator[torch.Tensor]:
            return (transform(part).double() for part in used.split(self.chunk))

        # 1. colour order up to R <-> B: G is the channel most correlated with the others
        if channels == 3:
            green = green_channel(chunks(), block)
            canon = torch.tensor([[1, 0, 2], [0, 1, 2], [0, 2, 1]])[green]  # [N, 3]: (a, G, b)
        else:
            canon = torch.zeros(n_pieces, 1, dtype=torch.long)
        mm = block * block
        canon_elems = (canon.unsqueeze(2) * mm + torch.arange(mm)).reshape(n_pieces, -1)  # [N, C*M*M]
        maps = local_maps(channels, block, swap=channels == 3)
        n_local = maps.shape[0]
        sides = _side_indices(channels, block)
        as_right = _side_as_right(maps, sides)
        right_elems = canon_elems[:, maps[:, sides["right"]]]  # [N, L, C*M] cipher elements
        report(progress, 1, 3, "extended_jigsaw: colour orders estimated")

        # 2. edge statistics over all directed edges, streamed
        gram = EdgeGram()
        for chunk in chunks():
            pieces = _pieces(chunk, block)  # [N, n, C*M*M]
            gathered = torch.gather(
                pieces.unsqueeze(1).expand(-1, n_local, -1, -1), 3,
                right_elems.unsqueeze(2).expand(-1, -1, pieces.shape[1], -1),
            )  # [N, L, n, C*M]
            gram.add(gathered.reshape(n_pieces * n_local, -1) - 0.0)
        same, flipped = gram.distances()
        per_piece = 2 * n_local
        beside, below = state_costs(same, flipped, n_pieces, as_right)

        if gray:
            states = self._solve_gray(used, beside, below, rows, cols, per_piece, block)
        else:
            states = solve_grid(rows, cols, beside, below, per_piece, self.refine_top)
        report(progress, 2, 3, "extended_jigsaw: pieces assembled")

        # the canonical solution as a full-image decryption gather (plain elem <- cipher elem) + mask
        piece, rest = states // per_piece, states % per_piece
        local, neg = rest // 2, rest % 2
        plain_of = torch.empty(channels * height * width, dtype=torch.long)
        mask_of = torch.empty(channels * height * width, dtype=torch.long)
        cell_r, cell_c = torch.arange(n_pieces) // cols, torch.arange(n_pieces) % cols
        elems = canon_elems[piece][torch.arange(n_pieces).unsqueeze(1), maps[local]]  # [cells, C*M*M] local cipher elems
        e_ch, e_pos = elems // mm, elems % mm
        p_r, p_c = piece // cols, piece % cols
        cipher_flat = e_ch * height * width + (p_r.unsqueeze(1) * block + e_pos // block) * width + p_c.unsqueeze(1) * block + e_pos % block
        out_local = torch.arange(channels * mm)
        o_ch, o_pos = out_local // mm, out_local % mm
        plain_flat = o_ch * height * width + (cell_r.unsqueeze(1) * block + o_pos // block) * width + cell_c.unsqueeze(1) * block + o_pos % block
        plain_of[plain_flat.reshape(-1)] = cipher_flat.reshape(-1)
        mask_of[plain_flat.reshape(-1)] = (neg * 255).unsqueeze(1).expand(-1, channels * mm).reshape(-1)
        plain_of = plain_of.view(channels, height, width)
        mask_of = mask_of.view(channels, height, width)

        # 3. the global symmetry, by maximum likelihood under a prior fitted to the attacker's images
        prior_n = min(self.prior_images, attacker_images.shape[0])
        plain_h, plain_w = self.family.image_size
        group = symmetries(3 if not gray else 1, plain_h == plain_w)
        sample = used[: min(n, 1000)].reshape(min(n, 1000), -1)

        def restored_under(symmetry):
            index, mask = self._symmetric_maps(plain_of, mask_of, symmetry, gray)
            return (sample[:, index.reshape(-1)] ^ mask.reshape(-1).to(torch.uint8)).view(-1, *index.shape)

        if gray:
            # the prior sees the Y plane (grayscale): negation and geometry of the whole Y plane
            group = symmetries(1, plain_h == plain_w)
            y_plane = self.layout.from_plain_colour(attacker_images[:prior_n].cpu())[:, :1]
            prior = SymmetryPrior(y_plane, group)
            scores = [prior.upright_log_likelihood(restored_under(s)[:, :, :, :plain_w]) for s in group]
        else:
            prior = SymmetryPrior(attacker_images[:prior_n].cpu(), group)
            scores = [prior.upright_log_likelihood(restored_under(s)) for s in group]
        best = int(np.argmax(scores))
        ranked = sorted(scores, reverse=True)
        index, mask = self._symmetric_maps(plain_of, mask_of, group[best], gray)
        encrypt_index = torch.argsort(index.reshape(-1))
        encrypt_mask = mask.reshape(-1)[encrypt_index]
        self.key = key_from_maps(encrypt_index.numpy(), encrypt_mask.numpy(), channels, height, width, block)
        self.recovered_cipher = template.rebuild(**self.key)
        assert np.array_equal(self.recovered_cipher.index_map(channels, height, width), encrypt_index.numpy())
        report(progress, 3, 3, "extended_jigsaw: global symmetry chosen")
        self.extra = {
            "ciphertexts_used": float(n),
            "symmetry_margin": float(ranked[0] - ranked[1]) / max(1, sample.shape[0]) if len(ranked) > 1 else 0.0,
        }
        self.note = (
            f"per-block geometry, negation{', colour order' if channels == 3 else ''} and block order estimated "
            f"from {n} ciphertexts; global symmetry chosen by a prior fitted to {prior_n} attacker images"
        )

    @staticmethod
    def _symmetric_maps(plain_of, mask_of, symmetry, gray):
        """The decryption gather and mask after a whole-image symmetry (Y plane only for etc_gray)."""
        turns, mirror, swap, neg = symmetry
        if gray:
            width = plain_of.shape[-1] // 3
            y_index, y_mask = plain_of[..., :width], mask_of[..., :width]
            y_index = apply_symmetry(y_index, (turns, mirror, 0, 0), negate=False)
            y_mask = apply_symmetry(y_mask, (turns, mirror, 0, 0), negate=False)
            if neg:
                y_mask = 255 - y_mask
            return torch.cat([y_index, plain_of[..., width:]], -1), torch.cat([y_mask, mask_of[..., width:]], -1)
        index = apply_symmetry(plain_of, symmetry, negate=False)
        mask = apply_symmetry(mask_of, symmetry, negate=False)
        return index, (255 - mask) if neg else mask

    def _solve_gray(self, used, beside, below, rows, cols, per_piece, block):
        """Luminance pieces on the Y plane, chroma pieces on the Cb | Cr planes."""
        pieces_var: torch.Tensor | float = 0.0
        for part in used.split(self.chunk):
            pieces = _pieces(part.double(), block)  # [N, n, M*M]
            pieces_var = pieces_var + pieces.var(2).sum(1)  # texture within blocks
        n_pieces = rows * cols
        plane = n_pieces // 3
        order = torch.as_tensor(pieces_var).argsort(descending=True)
        luminance = torch.zeros(n_pieces, dtype=torch.bool)
        luminance[order[:plane]] = True
        width_cells = cols // 3
        cell_plane = (torch.arange(n_pieces) % cols) // width_cells
        piece_of_state = torch.arange(beside.shape[0]) // per_piece
        allowed = (cell_plane.unsqueeze(1) == 0) == luminance[piece_of_state].unsqueeze(0)
        open_left = (torch.arange(n_pieces) % cols) % width_cells == 0
        # solve the Y plane and the chroma planes as separate grids
        y_cells = (cell_plane == 0).nonzero().squeeze(1)
        c_cells = (cell_plane != 0).nonzero().squeeze(1)
        y_states = (luminance[piece_of_state]).nonzero().squeeze(1)
        c_states = (~luminance[piece_of_state]).nonzero().squeeze(1)
        y_solution = solve_grid(rows, width_cells, beside[y_states][:, y_states], below[y_states][:, y_states], per_piece, self.refine_top)
        c_open = open_left.view(rows, cols)[:, width_cells:].reshape(-1)
        c_solution = solve_grid(
            rows, 2 * width_cells, beside[c_states][:, c_states], below[c_states][:, c_states], per_piece, self.refine_top,
            allowed=None, open_left=c_open,
        )
        states = torch.empty(n_pieces, dtype=torch.long)
        states[y_cells] = y_states[y_solution]
        states[c_cells] = c_states[c_solution]
        del allowed
        return states

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self.recovered_cipher is not None and self.layout is not None
        return self.recovered_cipher.decrypt(self.layout.unview(ciphertexts).contiguous())

    def _state(self) -> dict[str, object]:
        assert self.key is not None
        return {"key": {name: torch.from_numpy(np.asarray(v)) for name, v in self.key.items()}}

    def _load_state(self, state) -> None:
        assert self.family is not None
        self.key = {name: value.numpy() for name, value in state["key"].items()}
        self.recovered_cipher = self.family.template.rebuild(**self.key)
