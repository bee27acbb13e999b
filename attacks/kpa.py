"""``kpa``: known-plaintext key recovery for fixed-key ciphers (not run by the seed).

The attacker holds k plain images and their ciphertexts under the victim's key (taken from a
part of the victim's data that is never evaluated).  A per-cipher solver lists, for every key
entry, the values consistent with all k pairs; when each entry has exactly one consistent value
the pairs *determine* the key (the true key is always consistent, so a determined key is the
victim's).  The attack tries k = 1, 2, ... and reports the smallest k that determines the key
(``pairs_needed``), then decrypts the victim's ciphertexts with the recovered key through the
cipher's own ``decrypt``.  Where no k given determines it, the best consistent guess is used
and ``pairs_needed`` is NaN.

Solvers (cipher-specific knowledge, keyed by the registered cipher name):

- ``proposed``: K1 by matching each ciphertext block to the plain block with the same four
  sub-block pixel multisets (K2 moves pixels only inside sub-blocks, and whole pixels); K2 by
  intersecting, over all 4N sub-blocks, the plain positions whose pixel equals each ciphertext
  position's.  One pair suffices when the image's pixels are distinct enough that no two blocks
  share their multisets and each sub-block position is pinned by some sub-block.
- ``plain``: nothing to recover (key space 1): k = 0.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from attacks.base import Attack, AttackConfig, CipherFamily, Layout
from ciphers._common import CHANNEL_PERMUTATIONS
from ciphers.base import Cipher
from ciphers.etc import dihedral_source
from harness.progress import ProgressCallback, report
from harness.registry import attacks

#: solver(template, plain, cipher) -> (key entries for ``template.rebuild``, determined?)
Solver = Callable[[Cipher, torch.Tensor, torch.Tensor], tuple[dict[str, np.ndarray], bool]]
SOLVERS: dict[str, Solver] = {}


def solver(name: str) -> Callable[[Solver], Solver]:
    """Register the key-recovery solver of cipher ``name``."""

    def decorator(function: Solver) -> Solver:
        SOLVERS[name] = function
        return function

    return decorator


def assignment(consistent: torch.Tensor) -> tuple[np.ndarray, bool]:
    """A permutation ``p`` with ``consistent[i, p[i]]`` for all i, and whether it is the only one.

    Determined when every row has exactly one consistent column (then they form a permutation);
    otherwise the most consistent permutation (Hungarian) is returned as the best guess.
    """
    counts = consistent.sum(1)
    if bool((counts == 1).all()):
        perm = consistent.float().argmax(1).cpu().numpy()
        if np.array_equal(np.sort(perm), np.arange(perm.shape[0])):
            return perm.astype(np.int64), True
    _, perm = linear_sum_assignment(-consistent.cpu().numpy().astype(np.float64))
    return perm.astype(np.int64), False


def pixel_codes(images: torch.Tensor) -> torch.Tensor:
    """One int64 per pixel holding all its channel bytes: ``[B, H, W]``."""
    shifts = 8 * torch.arange(images.shape[1], device=images.device)
    return (images.long() << shifts.view(1, -1, 1, 1)).sum(1)


def subblocks(codes: torch.Tensor, block: int) -> torch.Tensor:
    """``[B, H, W]`` -> ``[B, N, 4, S]``: blocks in raster order, sub-blocks, positions."""
    batch, height, width = codes.shape
    half = block // 2
    grid = codes.view(batch, height // block, 2, half, width // block, 2, half)
    return grid.permute(0, 1, 4, 2, 5, 3, 6).reshape(batch, -1, 4, half * half)


def consistent_slots(cipher: torch.Tensor, plain: torch.Tensor, flip: int | None) -> torch.Tensor:
    """``ok[..., a, b]``: ciphertext slot a equals plain slot b (or b XOR ``flip``, one choice for all) everywhere.

    ``cipher`` ``[obs, ..., A]`` and ``plain`` ``[obs, ..., B]`` hold each slot's value in every
    observation.  Two slots agree when their whole value sequences are equal, so every sequence
    gets an exact label (``torch.unique`` over rows) and labels are compared: memory and time
    grow with the number of slots, not with slots squared times observations.
    """
    def rows(values: torch.Tensor) -> torch.Tensor:  # [obs, ..., S] -> [..., S, obs]
        return values.movedim(0, -1)

    sequences = [rows(cipher), rows(plain)] + ([rows(plain ^ flip)] if flip is not None else [])
    flat = torch.cat([seq.reshape(-1, seq.shape[-1]) for seq in sequences])
    labels = torch.unique(flat, dim=0, return_inverse=True)[1]
    parts = labels.split([seq.shape[:-1].numel() for seq in sequences])
    shaped = [part.view(seq.shape[:-1]) for part, seq in zip(parts, sequences)]
    ok = shaped[0].unsqueeze(-1) == shaped[1].unsqueeze(-2)
    if flip is not None:
        ok |= shaped[0].unsqueeze(-1) == shaped[2].unsqueeze(-2)
    return ok


def local_transforms(cipher: torch.Tensor, plain: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ok[u, t]``: unit u of every ciphertext is local transform t of the matching plain unit.

    ``cipher``, ``plain``: ``[k, U, L]`` (units already aligned); transform t maps a unit ``v``
    to ``v[index[t]] ^ mask[t]`` (``index``, ``mask``: ``[T, L]``).
    """
    transformed = plain[:, :, index.to(plain.device)] ^ mask.to(plain.device)  # [k, U, T, L]
    return (transformed == cipher.unsqueeze(2)).all(-1).all(0)


def match_units(signature_cipher: torch.Tensor, signature_plain: torch.Tensor) -> tuple[np.ndarray, bool]:
    """Which plain unit each ciphertext unit came from, by equal signatures ``[k, U, F]`` in every pair."""
    ok = torch.ones(signature_cipher.shape[1], signature_plain.shape[1], dtype=torch.bool, device=signature_cipher.device)
    for c, q in zip(signature_cipher, signature_plain):
        ok &= (c.unsqueeze(1) == q.unsqueeze(0)).all(-1)
    return assignment(ok)


def blocks_of(images: torch.Tensor, block: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, C, M*M]``: blocks in raster order, each flattened per channel."""
    batch, channels, height, width = images.shape
    grid = images.view(batch, channels, height // block, block, width // block, block)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(batch, -1, channels, block * block)


def nibble_vectors(images: torch.Tensor, block: int) -> torch.Tensor:
    """Tanaka's nibble vector z of every block: ``[B, N, 2d]`` (low nibbles then high, (row, col, channel) order)."""
    data = blocks_of(images, block).transpose(-1, -2).flatten(-2)  # [B, N, M*M*C], channel fastest
    return torch.cat([data & 15, data >> 4], dim=-1)


def sorted_folded(values: torch.Tensor, top: int) -> torch.Tensor:
    """Multiset of ``min(v, top - v)`` per unit ``[..., L]``: invariant under moves and ``top - v`` flips."""
    return torch.minimum(values, top - values).sort(-1).values


def _transform_tables(block: int, channels: int, colour_orders: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """EtC's local transforms of one flattened ``[C, M*M]`` block, t = (geometry * 2 + negpos) * orders + order."""
    geometry = torch.from_numpy(dihedral_source(block))  # [8, M*M]
    orders = torch.from_numpy(CHANNEL_PERMUTATIONS) if colour_orders else torch.arange(channels).view(1, channels)
    index = orders.view(1, 1, -1, channels, 1) * block * block + geometry.view(8, 1, 1, 1, -1)
    index = index.expand(8, 2, -1, channels, block * block)
    mask = (torch.arange(2, dtype=torch.uint8) * 255).view(1, 2, 1, 1, 1).expand_as(index)
    return index.reshape(-1, channels * block * block), mask.reshape(-1, channels * block * block).to(torch.uint8)


def _blockwise_etc(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor, colour_orders: bool) -> tuple[dict[str, np.ndarray], bool]:
    """EtC: blocks matched by their multiset of folded bytes, then one of 96 (16) transforms per block."""
    block = template.block_size
    p, c = blocks_of(plain, block).flatten(-2), blocks_of(cipher, block).flatten(-2)  # [k, N, C*M*M]
    block_perm, blocks_unique = match_units(sorted_folded(c, 255), sorted_folded(p, 255))
    aligned = p[:, torch.from_numpy(block_perm).to(p.device)]
    index, mask = _transform_tables(block, plain.shape[1], colour_orders)
    ok = local_transforms(c, aligned, index, mask)  # [N, T]: ciphertext block i, transform of plain block K1[i]
    choice = ok.float().argmax(1).cpu().numpy()
    orders = 6 if colour_orders else 1
    geometry_negpos, order = np.divmod(choice, orders)
    geometry, negpos = np.divmod(geometry_negpos, 2)
    key = {name: np.empty_like(geometry) for name in ("geometry", "negpos")}
    key["geometry"][block_perm], key["negpos"][block_perm] = geometry, negpos  # keys sit at the source position
    if colour_orders:
        key["channel_perm"] = np.empty_like(order)
        key["channel_perm"][block_perm] = order
    return {**key, "block_perm": block_perm}, blocks_unique and bool((ok.sum(1) == 1).all())


@solver("plain")
def _plain(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    return {}, True


@solver("proposed")
def _proposed(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    block = template.block_size
    p, c = subblocks(pixel_codes(plain), block), subblocks(pixel_codes(cipher), block)
    block_perm, blocks_unique = match_units(c.sort(-1).values.flatten(2), p.sort(-1).values.flatten(2))
    aligned = p[:, torch.from_numpy(block_perm).to(p.device)]
    # ciphertext position s holds plain position t in every sub-block seen
    positions_ok = consistent_slots(c.flatten(0, 2), aligned.flatten(0, 2), None)
    pixel_perm, positions_unique = assignment(positions_ok)
    return {"block_perm": block_perm, "pixel_perm": pixel_perm}, blocks_unique and positions_unique


@solver("le")
def _le(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """One P for all blocks: every block of every pair is an observation of each nibble slot."""
    block = template.block_size
    z_p, z_c = nibble_vectors(plain, block).flatten(0, 1), nibble_vectors(cipher, block).flatten(0, 1)
    perm, unique = assignment(consistent_slots(z_c, z_p, 15))
    return {"perm": perm}, unique


@solver("ele")
def _ele(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """Blocks matched by their folded-nibble multisets, then each position's P from that block alone."""
    block = template.block_size
    z_p, z_c = nibble_vectors(plain, block), nibble_vectors(cipher, block)  # [k, N, 2d]
    block_perm, blocks_unique = match_units(sorted_folded(z_c, 15), sorted_folded(z_p, 15))
    aligned = z_p[:, torch.from_numpy(block_perm).to(z_p.device)]
    ok = consistent_slots(z_c, aligned, 15)  # [N, 2d, 2d] for ciphertext block i
    solved = [assignment(rows) for rows in ok]
    perms = np.empty((len(solved), z_p.shape[-1]), dtype=np.int64)
    perms[block_perm] = np.stack([perm for perm, _ in solved])  # P_p belongs to source position p
    return {"perms": perms, "block_perm": block_perm}, blocks_unique and all(unique for _, unique in solved)


@solver("etc")
def _etc(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    return _blockwise_etc(template, plain, cipher, colour_orders=True)


@solver("etc_gray")
def _etc_gray(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """As EtC on the H x 3W YCbCr gray image (the public colour transform applied to the plain pairs)."""
    layout = Layout("planes", plain.shape[1], "ycbcr")
    return _blockwise_etc(template, layout.unview(layout.from_plain_colour(plain)), cipher, colour_orders=False)


@solver("pe")
def _pe_same_key(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """PE under one key (``same_key``): each pixel is one of 48 colour-order x flip transforms."""
    units_p, units_c = plain.flatten(2).transpose(1, 2), cipher.flatten(2).transpose(1, 2)  # [k, H*W, 3]
    flips = torch.tensor([[(b >> j) & 1 for j in range(3)] for b in range(8)])  # bit j: input channel j
    orders = torch.from_numpy(CHANNEL_PERMUTATIONS)
    index = orders.view(6, 1, 3).expand(6, 8, 3)  # output channel c reads input channel p[c]
    mask = (flips.view(1, 8, 3).expand(6, 8, 3).gather(2, index) * 255).to(torch.uint8)
    ok = local_transforms(units_c, units_p, index.reshape(48, 3), mask.reshape(48, 3))
    order, pattern = np.divmod(ok.float().argmax(1).cpu().numpy(), 8)
    height, width = plain.shape[-2:]
    negpos = flips.numpy()[pattern].T.reshape(3, height, width)
    return {"negpos": negpos, "channel_perm": order.reshape(height, width)}, bool((ok.sum(1) == 1).all())


def smallest_determining(
    attempt: Callable[[int], tuple[dict[str, np.ndarray], bool]], available: int
) -> tuple[int, dict[str, np.ndarray], bool]:
    """The fewest pairs (of ``available``) that determine the key, by doubling then bisection.

    More pairs only remove candidates, so "determined" is monotone in k.  Returns
    ``(k, key, determined)``; when even all pairs leave the key open, the guess from all of them.
    """
    low, high, found = 0, 1, None  # invariant: low pairs leave the key open
    while found is None:
        key, determined = attempt(high)
        if determined:
            found = (high, key)
        elif high == available:
            return available, key, False
        else:
            low, high = high, min(2 * high, available)
    while high - low > 1:
        middle = (low + high) // 2
        key, determined = attempt(middle)
        if determined:
            found, high = (middle, key), middle
        else:
            low = middle
    return found[0], found[1], True


@attacks.register("kpa", "known_plaintext")
class KnownPlaintextAttack(Attack):
    """Exact key recovery from the fewest known pairs; decrypts with the recovered key."""

    threat_model = "known-plaintext"
    uses_known_pairs = True
    restores_positions = True

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed=seed, device=device)
        self.key: dict[str, np.ndarray] | None = None
        self._cipher: Cipher | None = None

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        reason = super().applies_to(family)
        if reason is not None:
            return reason
        if family.per_image_key:
            return "every image has its own key: pairs under other images' keys say nothing about the victim's"
        if family.canonical_name not in SOLVERS:
            return f"no key-recovery solver for {family.canonical_name} (implemented: {', '.join(sorted(SOLVERS))})"
        return None

    def _fit(
        self,
        attacker_images: torch.Tensor,
        config: AttackConfig,
        progress: ProgressCallback | None,
        *,
        victim: torch.Tensor | None,
        pairs: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> None:
        assert self.family is not None and self.layout is not None and pairs is not None
        template = self.family.template
        solve = SOLVERS[self.family.canonical_name]
        plain, cipher = pairs[0], self.layout.unview(pairs[1])
        available = plain.shape[0]
        def attempt(k: int) -> tuple[dict[str, np.ndarray], bool]:
            key, determined = solve(template, plain[:k], cipher[:k])
            report(progress, k, available, f"kpa: {k} pair(s), key {'determined' if determined else 'open'}")
            return key, determined

        if template.key_space() == 1:
            k, (key, determined) = 0, attempt(0)
        else:
            k, key, determined = smallest_determining(attempt, available)
        self.key = key
        self._cipher = template.rebuild(**key)
        self.extra = {"pairs_needed": float(k) if determined else math.nan, "pairs_given": float(available)}
        self.note = (
            f"key determined by {k} known pair(s)"
            if determined
            else f"{available} known pairs leave the key open; decrypted with the best consistent guess"
        )

    def _restore(self, ciphertexts: torch.Tensor) -> torch.Tensor:
        assert self._cipher is not None and self.layout is not None
        return self._cipher.decrypt(self.layout.unview(ciphertexts))

    def _state(self) -> dict[str, object]:
        assert self.key is not None
        return {"key": {name: torch.from_numpy(np.asarray(value)) for name, value in self.key.items()}}

    def _load_state(self, state) -> None:
        assert self.family is not None
        self.key = {name: value.numpy() for name, value in state["key"].items()}
        self._cipher = self.family.template.rebuild(**self.key)
