"""``nibble``: ciphertext-only key recovery for LE and ELE (nibble shuffles with derived flips).

An LE key moves the 2d nibble slots of a block (d = M*M*C) by one permutation P and flips
(``n -> 15 - n``) output slot i exactly when one of i, P[i] carries a high nibble
(F = {i : P[i] > d}).  Statistics pooled over every block of every ciphertext (LE) or over every
ciphertext at each block position (ELE) expose P:

1. *Which slots carry high nibbles.*  High nibbles of natural images are smooth, so the high
   slots of a block are strongly correlated with each other; low nibbles are near noise.  The
   d slots with the largest summed squared correlation are the high ones.
2. *Their relative signs.*  All high nibbles of a block are positively correlated in the plain
   image, so the signs of the leading eigenvector of their correlation give each slot's flip up
   to one global sign.
3. *Their layout.*  Raw correlations of smooth photographs are high between every pair of
   slots of a block, so they barely tell a neighbour from the far corner, and how fast they
   decay depends on the photographs.  *Partial* correlations (from the precision matrix) keep
   only the direct neighbours (next pixel, same pixel's other channel) on any photographs, so
   the layout matches the sign-corrected partial correlations of the ciphertext slots to those
   of high nibbles in the attacker's own plain images (both as z-scores): a quadratic
   assignment.  Because the flip of output slot i is ``H(i) xor H(P[i])`` (H: "carries a high
   nibble", known from step 1), each slot's sign names the cells it may come from, a linear
   term weighted 10x: the prior is nearly invariant under the block's dihedral group and
   channel orders, the flips are not, so a rotated or mirrored key would decrypt with wrong
   flips and must not win.  (The one slot carrying source slot d is not in F, the cipher's
   ``P[i] > d``, which the flip rules honour.)  The sparse objective defeats relaxations (FAQ),
   so a beam search fills the cells in raster order, each choice judged against the cells
   already filled; pairwise-swap descent polishes the best beams, then restarts from the
   symmetric images of the best, for both global signs.
4. *The low nibbles.*  With the high nibbles decoded, each byte's low nibble is predicted by how
   far its neighbours' coarse values sit from its own (a neighbour one high-nibble step up means
   the low nibble is probably large): the low slots are assigned to bytes by the largest
   correlation with that prediction (linear assignment), signed by the flip the key implies.
5. *ELE.*  Steps 1-4 run per block position (the scrambled position keeps its key), then the
   per-position keys are undone and the blocks are reassembled by ``puzzle``'s jigsaw.  The
   flip term pins each position's key exactly (not only up to a symmetry of the block), so the
   pieces need no rotation.

The recovered key is applied with the cipher's own ``decrypt``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from attacks.base import AttackConfig, CipherFamily, KeyRecoveryAttack, check_int
from attacks.puzzle import block_statistics, dihedral, estimate_block_perm
from harness.progress import ProgressCallback, report
from harness.registry import attacks


def block_nibbles(images: torch.Tensor, block: int) -> torch.Tensor:
    """Nibble vectors of every block: ``[N, n, 2d]`` (N block positions), float64.

    Slot order as in the cipher: all low nibbles, then all high ones, bytes in (row, col, channel).
    """
    n, channels, height, width = images.shape
    grid = images.view(n, channels, height // block, block, width // block, block)
    blocks = grid.permute(2, 4, 0, 3, 5, 1).reshape((height // block) * (width // block), n, -1)
    return torch.cat([blocks & 15, blocks >> 4], dim=2).double()


class Moments:
    """Streamed first and second moments of feature vectors, per group: ``[G, n, F]`` chunks."""

    def __init__(self) -> None:
        self.total: torch.Tensor | float = 0.0
        self.gram: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, x: torch.Tensor) -> None:
        self.total = self.total + x.sum(1)
        self.gram = self.gram + x.transpose(1, 2) @ x
        self.count += x.shape[1]

    def covariance(self) -> torch.Tensor:
        assert isinstance(self.gram, torch.Tensor), "add at least one chunk"
        mean = self.total / self.count
        return self.gram / self.count - mean.unsqueeze(2) * mean.unsqueeze(1)

    def correlation(self) -> torch.Tensor:
        cov = self.covariance()
        std = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt()
        return cov / (std.unsqueeze(2) * std.unsqueeze(1))


def qap_descent(a: np.ndarray, b: np.ndarray, linear: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise-swap ascent of ``sum_ik a[i,k] b[p[i],p[k]] + sum_i linear[i,p[i]]``, batched.

    ``a``, ``b`` symmetric with zero diagonals; ``starts`` ``[K, n]`` arrangements (``p[i]``: the
    cell of item i), all descended at once to local maxima: returns them and their scores.
    (``puzzle``'s ``descend`` scores edges with one cost matrix per edge set; here every cell
    pair has its own weight, so the swap gains are computed in closed form: one batched matrix
    product per step.)
    """
    p = starts.copy()
    k, n = p.shape
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    items = np.arange(n)
    active = np.ones(k, dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        q = p[rows]
        bp = b[q[:, :, None], q[:, None, :]]  # [K, n, n]
        m = a[None] @ bp.transpose(0, 2, 1)
        diag = np.diagonal(m, axis1=1, axis2=2)
        quad = 2 * (m + m.transpose(0, 2, 1) - diag[:, :, None] - diag[:, None, :] + 2 * a[None] * bp)
        lin = linear[items[None, :, None], q[:, None, :]]  # lin[r, i, j] = linear[i, q[r, j]]
        lin_now = np.diagonal(lin, axis1=1, axis2=2)
        gain = quad + lin + lin.transpose(0, 2, 1) - lin_now[:, :, None] - lin_now[:, None, :]
        gain = np.where(upper[None], gain, -np.inf).reshape(len(rows), -1)
        best = gain.argmax(1)
        improving = gain[np.arange(len(rows)), best] > 1e-10
        active[rows[~improving]] = False
        i, j = np.divmod(best[improving], n)
        moved = rows[improving]
        p[moved, i], p[moved, j] = p[moved, j], p[moved, i]
    return p, np.array([qap_score(a, b, linear, row) for row in p])


def standardised(matrix: np.ndarray) -> np.ndarray:
    """Off-diagonal entries of a correlation matrix as z-scores (zero diagonal).

    Matching z-scores instead of raw correlations makes the layout independent of how smooth
    the victim's images are compared with the attacker's.
    """
    mask = ~np.eye(len(matrix), dtype=bool)
    values = matrix[mask]
    out = (matrix - values.mean()) / max(values.std(), 1e-12)
    np.fill_diagonal(out, 0.0)
    return out


#: the correlations are shrunk by ``RIDGE_SAMPLES / samples`` before inversion (0.1 from 100 ELE
#: ciphertexts, where it lays out 97% of the positions' high slots exactly instead of 84%, on
#: ``other`` photographs)
RIDGE_SAMPLES = 10.0


def partial_correlation(corr: np.ndarray, ridge: float) -> np.ndarray:
    """Partial correlations ``-Q_ij / sqrt(Q_ii Q_jj)`` (Q: the precision matrix), unit diagonal.

    Raw correlations of smooth photographs are high between every pair of slots of a block, so
    they barely tell a neighbour from the far corner; given all the other slots, only the
    direct neighbours stay correlated, on any photographs.
    """
    precision = np.linalg.inv(corr + max(ridge, 1e-6) * np.eye(len(corr)))
    scale = np.sqrt(np.clip(np.diag(precision), 1e-12, None))
    out = -precision / np.outer(scale, scale)
    np.fill_diagonal(out, 1.0)
    return out


def qap_score(a: np.ndarray, b: np.ndarray, linear: np.ndarray, p: np.ndarray) -> float:
    """The objective :func:`qap_descent` maximises, at arrangement ``p``."""
    return float((a * b[np.ix_(p, p)]).sum() + linear[np.arange(len(p)), p].sum())


def high_slots(corr: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The d slots carrying high nibbles (sorted) and their relative signs, from a slot correlation."""
    strength = (corr**2).sum(1) - 1
    high = np.sort(np.argsort(-strength)[:d])
    vector = np.linalg.eigh(corr[np.ix_(high, high)])[1][:, -1]
    return high, np.where(vector >= 0, 1.0, -1.0)


def beam_layout(a: np.ndarray, b: np.ndarray, linear: np.ndarray, width: int) -> np.ndarray:
    """Arrangements ``[K, n]`` (``p[i]``: the cell of item i) built cell by cell, keeping the ``width`` best.

    Cell k takes an unused item by its gain against the cells already filled (the objective of
    :func:`qap_descent`).  Neighbouring cells of the prior are filled close together (raster
    order), so each choice is judged by its strongest partial correlations; unlike a relaxation
    of the whole problem, this holds on the sparse partial-correlation matrices.
    """
    n = len(a)
    placed = np.zeros((1, 0), dtype=np.int64)  # [beam, k]: item at each filled cell
    used = np.zeros((1, n), dtype=bool)
    score = np.zeros(1)
    for k in range(n):
        gain = 2 * np.einsum("ibj,j->bi", a[:, placed], b[k, :k]) + linear[:, k][None]
        total = np.where(used, -np.inf, score[:, None] + gain)
        flat = np.argsort(-total, axis=None, kind="stable")[:width]
        flat = flat[np.isfinite(total.reshape(-1)[flat])]
        rows, items = np.divmod(flat, n)
        placed = np.concatenate([placed[rows], items[:, None]], 1)
        used = used[rows]
        used[np.arange(len(rows)), items] = True
        score = total.reshape(-1)[flat]
    p = np.empty_like(placed)
    p[np.arange(len(placed))[:, None], placed] = np.arange(n)[None]
    return p


def high_layout(
    corr: np.ndarray, prior: np.ndarray, block: int, channels: int, beam: int, flip_weight: float, ridge: float,
    descents: int = 8,
) -> tuple[np.ndarray, np.ndarray, float]:
    """P restricted to the high slots, from one block position's slot correlation ``[2d, 2d]``.

    ``ridge`` shrinks both correlations before they are inverted: few ciphertexts give a noisy
    precision matrix (shrinking the attacker's prior alike keeps the two comparable).  Returns
    ``(high, source, score)``: the ciphertext slots carrying high nibbles (sorted) and the source
    slot (d..2d-1) of each.
    """
    d = block * block * channels
    high, signs = high_slots(corr, d)
    oriented = corr[np.ix_(high, high)] * np.outer(signs, signs)
    a, b = standardised(partial_correlation(oriented, ridge)), standardised(partial_correlation(prior, ridge))
    # a high slot i from source s (d..2d-1) is flipped iff slot s carries no high nibble
    # (H(i) = 1); observed sign +1 means "not flipped" under global sign +1
    expected = np.where(np.isin(np.arange(d, 2 * d), high), 1.0, -1.0)  # [cells]: sign a slot from source d + cell shows
    expected[0] *= -1  # the slot carrying source d is not in F itself (P[i] = d is not > d)
    linears = [flip_weight * sigma * np.outer(signs, expected) for sigma in (1.0, -1.0)]
    tried = [qap_descent(a, b, linear, beam_layout(a, b, linear, beam)[:descents]) for linear in linears]
    found, scores = max(tried, key=lambda r: r[1].max())
    layout, score = found[scores.argmax()], float(scores.max())
    # the prior is nearly symmetric under the block's dihedral group and channel swaps: descend
    # from every symmetric image of the best, under both global signs, until nothing improves
    moves = np.stack(cell_symmetries(block, channels))  # [S, d]
    while True:
        tried = [qap_descent(a, b, linear, moves[:, layout]) for linear in linears]
        q, q_scores = max(tried, key=lambda r: r[1].max())
        if q_scores.max() <= score + 1e-9:
            break
        layout, score = q[q_scores.argmax()], float(q_scores.max())
    return high, layout + d, score


def cell_symmetries(block: int, channels: int) -> list[np.ndarray]:
    """Maps of byte cells (pixel * C + channel) under the block's 8 symmetries x channel orders."""
    from itertools import permutations

    out = []
    for pixel_map in dihedral(block, torch.device("cpu")):
        for order in permutations(range(channels)):
            out.append((pixel_map.numpy()[:, None] * channels + np.array(order)[None, :]).reshape(-1))
    return out


def low_targets(high: torch.Tensor, low: torch.Tensor, block: int, channels: int) -> torch.Tensor:
    """Predicted low nibbles of blocks from their decoded nibbles ``[n, d]`` (high, low estimates).

    For each byte: the mean over its in-block 4-neighbours (same channel) of ``16 h_q + l_q``,
    minus ``16 h_b``: where the neighbours' values sit above this byte's high nibble.
    """
    n = high.shape[0]
    h = high.reshape(n, block, block, channels)
    value = (16 * high + low).reshape(n, block, block, channels)
    total = torch.zeros_like(h)
    count = torch.zeros_like(h)
    for axis in (1, 2):
        for step in (1, -1):
            valid = torch.ones_like(h)
            index = [slice(None)] * 4
            index[axis] = 0 if step == 1 else -1
            valid[tuple(index)] = 0
            total += value.roll(step, axis) * valid
            count += valid
    return (total / count.clamp_min(1) - 16 * h).reshape(n, -1)


def decode_slots(slots: torch.Tensor, perm: np.ndarray) -> torch.Tensor:
    """Plain nibble vectors ``[n, 2d]`` from cipher slots ``[n, 2d]`` under LE permutation ``perm``."""
    d = len(perm) // 2
    in_f = perm > d
    flipped = torch.from_numpy(in_f ^ in_f[perm])
    values = torch.where(flipped, 15 - slots, slots)
    plain = torch.empty_like(slots)
    plain[:, torch.from_numpy(perm)] = values
    return plain


class CrossMoments:
    """Streamed correlation between two feature streams, per group: ``[G, n, F1]``, ``[G, n, F2]``."""

    def __init__(self) -> None:
        self.sx: torch.Tensor | float = 0.0
        self.sy: torch.Tensor | float = 0.0
        self.sxx: torch.Tensor | float = 0.0
        self.syy: torch.Tensor | float = 0.0
        self.sxy: torch.Tensor | float = 0.0
        self.count = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.sx, self.sy = self.sx + x.sum(1), self.sy + y.sum(1)
        self.sxx, self.syy = self.sxx + (x * x).sum(1), self.syy + (y * y).sum(1)
        self.sxy = self.sxy + x.transpose(1, 2) @ y
        self.count += x.shape[1]

    def correlation(self) -> torch.Tensor:
        n = self.count
        mx, my = self.sx / n, self.sy / n
        cov = self.sxy / n - mx.unsqueeze(2) * my.unsqueeze(1)
        vx = (self.sxx / n - mx * mx).clamp_min(1e-12)
        vy = (self.syy / n - my * my).clamp_min(1e-12)
        return cov / (vx.sqrt().unsqueeze(2) * vy.sqrt().unsqueeze(1))


def flip_set(high: np.ndarray, source: np.ndarray, d: int) -> np.ndarray:
    """F = {i : P[i] > d} over the 2d slots, from the high slots and their sources.

    Every slot carrying a high nibble is in F except the one carrying slot d itself (the high
    nibble of byte 0): the cipher's ``>`` leaves it out.
    """
    in_f = np.zeros(2 * d, dtype=bool)
    in_f[high[source > d]] = True
    return in_f


def perm_from_parts(high: np.ndarray, high_source: np.ndarray, low: np.ndarray, low_source: np.ndarray, d: int) -> np.ndarray:
    perm = np.empty(2 * d, dtype=np.int64)
    perm[high] = high_source
    perm[low] = low_source
    return perm


#: the most high-nibble slots d = M * M * 3 of a block the layout search takes on: its swap descent
#: costs O(d^3) per step (and runs per block position for ELE), 64 times more at 16 x 16 than at
#: 8 x 8, hours on a CPU at 224 x 224; larger blocks are n/a with this reason (docs/attacks.md)
MAX_SLOTS = 192


@attacks.register("nibble", "le_keyrec")
class NibbleAttack(KeyRecoveryAttack):
    """Recover a fixed LE key (or ELE's per-position keys and block scramble) from ciphertexts."""

    uses_victim_ciphertexts = True
    statistical = True
    version = 2  # v2: partial-correlation layout by beam search (keys change)

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        beam: int = 256,
        max_ciphertexts: int = 5000,
        chunk: int = 256,
        flip_weight: float = 10.0,
        refine: int = 1,
    ) -> None:
        super().__init__(seed=seed, device=device)
        for name, value, minimum in (("beam", beam, 1), ("max_ciphertexts", max_ciphertexts, 1), ("chunk", chunk, 1), ("refine", refine, 0)):
            check_int(name, value, minimum)
        if isinstance(flip_weight, bool) or not isinstance(flip_weight, (int, float)) or not flip_weight >= 0:
            raise ValueError(f"flip_weight must be a number >= 0, got {flip_weight!r}")
        self.beam, self.max_ciphertexts, self.chunk = beam, max_ciphertexts, chunk
        self.flip_weight, self.refine = float(flip_weight), refine

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        if family.per_image_key:
            return "every image has its own key: there are no shared statistics to pool"
        traits = family.template.traits
        if traits.within_block != "nibble_shuffle":
            return "the within-block transform is not a nibble shuffle with derived flips"
        if traits.per_position_key and not traits.block_scrambling:
            return "per-position nibble keys without block scrambling are not modelled"
        if traits.block_scrambling and not traits.per_position_key:
            return "a shared nibble key under block scrambling is not modelled"
        if traits.negative_positive or traits.channel_shuffle or traits.colour_space != "rgb":
            return "extra value or colour transforms besides the nibble shuffle are not modelled"
        block = family.template.block_size
        if 3 * block * block > MAX_SLOTS:
            return (
                f"a {block} x {block} block has {3 * block * block} high-nibble slots: the layout search (O(d^3) per step) "
                f"is budgeted for at most {MAX_SLOTS} (8 x 8 blocks); attack these ciphers with --block-size 8 or less"
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
        block = template.block_size
        used = victim[: self.max_ciphertexts].cpu()
        n, channels, height, width = used.shape
        rows, cols = height // block, width // block
        d = block * block * channels
        per_position = bool(template.traits.per_position_key)

        def chunks() -> Iterator[torch.Tensor]:
            for part in used.split(self.chunk):
                slots = block_nibbles(part, block)  # [N, n, 2d]
                yield slots if per_position else slots.reshape(1, -1, 2 * d)

        # prior: correlation of high nibbles in the attacker's plain images (canonical layout)
        prior_moments = Moments()
        for part in attacker_images.cpu().split(self.chunk):
            prior_moments.add(block_nibbles(part, block).reshape(1, -1, 2 * d)[:, :, d:])
        prior = prior_moments.correlation()[0].numpy()

        moments = Moments()
        for slots in chunks():
            moments.add(slots)
        corr = moments.correlation().numpy()
        parts = self._layouts(corr, prior, block, channels, RIDGE_SAMPLES / moments.count)
        report(progress, 1, 3, "nibble: high-nibble slots placed")

        # low nibbles: correlate low slots with their prediction from the decoded neighbours (first
        # from the high nibbles alone, then from the full bytes of the previous estimate)
        lows = [np.setdiff1d(np.arange(2 * d), high) for high, _, _ in parts]
        perms: list[np.ndarray] | None = None
        for _ in range(1 + self.refine):
            cross = CrossMoments()
            for slots in chunks():
                xs, targets = [], []
                for g, (high, source, _) in enumerate(parts):
                    xs.append(slots[g][:, torch.from_numpy(lows[g])])
                    if perms is None:
                        values = torch.full((slots.shape[1], d), 7.5, dtype=slots.dtype)
                        coarse = torch.empty(slots.shape[1], d, dtype=slots.dtype)
                        coarse[:, torch.from_numpy(source - d)] = slots[g][:, torch.from_numpy(high)]
                        high_values = self._orient(coarse, parts[g], d)
                    else:
                        plain = decode_slots(slots[g], perms[g])
                        values, high_values = plain[:, :d], plain[:, d:]
                    targets.append(low_targets(high_values, values, block, channels))
                cross.add(torch.stack(xs), torch.stack(targets))
            low_corr = cross.correlation().numpy()  # [G, low slots, bytes]
            perms = []
            for g, (high, source, _) in enumerate(parts):
                # a low slot from byte b is flipped iff slot b is in F
                expected = np.where(flip_set(high, source, d)[:d], -1.0, 1.0)
                rows_, cols_ = linear_sum_assignment(-(low_corr[g] * expected[None, :]))
                perms.append(perm_from_parts(high, source, lows[g][rows_], cols_, d))
        report(progress, 2, 3, "nibble: low-nibble slots placed")

        if per_position:
            within = np.stack(perms)
            unshuffle = template.rebuild(perms=within, block_perm=np.arange(rows * cols)).decrypt
            pi = estimate_block_perm(*block_statistics((unshuffle(p).double() for p in used.split(self.chunk)), block), rows, cols)
            pi = pi.cpu().numpy()
            self.key = {"perms": within[pi], "block_perm": np.argsort(pi)}
        else:
            self.key = {"perm": perms[0]}
        report(progress, 3, 3, "nibble: key rebuilt")
        self.recovered_cipher = template.rebuild(**self.key)
        self.extra = {"ciphertexts_used": float(n)}
        self.note = f"nibble key{'s and block scramble' if per_position else ''} estimated from {n} ciphertexts of one key"

    def _layouts(
        self, corr: np.ndarray, prior: np.ndarray, block: int, channels: int, ridge: float
    ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """:func:`high_layout` of every group; outliers (ELE positions scoring under 90% of the
        median, where the beam lost the layout) are searched again with a 4x wider beam."""
        parts = [high_layout(c, prior, block, channels, self.beam, self.flip_weight, ridge) for c in corr]
        median = float(np.median([score for _, _, score in parts]))
        for g, (_, _, score) in enumerate(parts):
            if score < 0.9 * median:
                wider = high_layout(corr[g], prior, block, channels, 4 * self.beam, self.flip_weight, ridge)
                parts[g] = max(parts[g], wider, key=lambda part: part[2])
        return parts

    @staticmethod
    def _orient(values: torch.Tensor, part: tuple[np.ndarray, np.ndarray, float], d: int) -> torch.Tensor:
        """High nibbles with the flips the placed layout implies undone (``values`` by source)."""
        high, source, _ = part
        in_f = flip_set(high, source, d)
        flipped = in_f[high] ^ in_f[source]  # output slot i is flipped iff one of i, P[i] is in F
        mask = torch.zeros(d, dtype=torch.bool)
        mask[torch.from_numpy(source - d)] = torch.from_numpy(flipped)
        return torch.where(mask, 15 - values, values)
