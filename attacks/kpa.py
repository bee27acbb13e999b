"""``kpa``: known-plaintext key recovery for fixed-key ciphers (not run by the seed).

The attacker holds k plain images and their ciphertexts under the victim's key (taken from a
part of the victim's data that is never evaluated).  A per-cipher solver lists, for every key
entry, the values consistent with all k pairs; when each entry has exactly one consistent value
the pairs *determine* the key (the true key is always consistent, so a determined key is the
victim's).  The attack tries k = 1, 2, ... and reports the smallest k that determines the key
(``pairs_needed``), then decrypts the victim's ciphertexts with the recovered key through the
cipher's own ``decrypt``.  Where no k given determines it, the best consistent guess is used
and ``pairs_needed`` is NaN.

Solvers are chosen from the cipher's declared traits (:class:`ciphers.base.Traits`), never from
its name; a structural solver is used only where the cipher's key has that family's entries,
and any other fixed-key cipher that declares ``byte_map`` gets the generic gather + XOR solver:

- ``proposed``: K1 by matching each ciphertext block to the plain block with the same four
  sub-block pixel multisets (K2 moves pixels only inside sub-blocks, and whole pixels); K2 by
  intersecting, over all 4N sub-blocks, the plain positions whose pixel equals each ciphertext
  position's.  One pair suffices when the image's pixels are distinct enough that no two blocks
  share their multisets and each sub-block position is pinned by some sub-block.
- identity (``plain``): nothing to recover (key space 1): k = 0.
- nibble shuffle (LE; ELE with per-position keys), dihedral blocks (EtC; grayscale EtC on
  YCbCr planes), pixel-wise colour keys (PE under one key): see each solver's docstring.
- generic byte map: ``c[j] = x[index[j]] ^ mask[j]``.  XOR-ing two pairs cancels the mask, so
  ciphertext byte j and plain byte i can match only if their difference sequences over the
  pairs are equal; the key is determined when every such sequence is unique.  Restoration
  inverts the recovered map itself (:class:`RecoveredByteMap`).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from attacks.base import AttackConfig, CipherFamily, KeyRecoveryAttack, Layout
from ciphers.blockwise_ak import BYTE_VALUES, block_vector_index
from ciphers.transforms import CHANNEL_PERMUTATIONS, dihedral_source
from ciphers.base import Cipher, IndexMapCipher, Traits
from harness.progress import ProgressCallback, report
from harness.registry import attacks

#: solver(template, plain, cipher) -> (key entries for ``template.rebuild``, determined?)
Solver = Callable[[Cipher, torch.Tensor, torch.Tensor], tuple[dict[str, np.ndarray], bool]]
#: (structure test on the traits and block size, key entries the solver returns, solver), tried in order
STRUCTURAL: list[tuple[Callable[[Traits, int], bool], tuple[str, ...], Solver]] = []


def solver(applies: Callable[[Traits, int], bool], *entries: str) -> Callable[[Solver], Solver]:
    """Register a structural solver for ciphers whose traits pass ``applies`` and whose key has ``entries``."""

    def decorator(function: Solver) -> Solver:
        STRUCTURAL.append((applies, entries, function))
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


@solver(lambda t, block: t.identity)
def _plain(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    return {}, True


@solver(
    lambda t, block: t.within_block == "pixel_shuffle" and not (t.per_position_key or t.value_bijection or t.channel_shuffle),
    "block_perm", "pixel_perm",
)
def _proposed(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    block = template.block_size
    p, c = subblocks(pixel_codes(plain), block), subblocks(pixel_codes(cipher), block)
    block_perm, blocks_unique = match_units(c.sort(-1).values.flatten(2), p.sort(-1).values.flatten(2))
    aligned = p[:, torch.from_numpy(block_perm).to(p.device)]
    # ciphertext position s holds plain position t in every sub-block seen
    positions_ok = consistent_slots(c.flatten(0, 2), aligned.flatten(0, 2), None)
    pixel_perm, positions_unique = assignment(positions_ok)
    return {"block_perm": block_perm, "pixel_perm": pixel_perm}, blocks_unique and positions_unique


@solver(lambda t, block: t.within_block == "nibble_shuffle" and not (t.per_position_key or t.block_scrambling), "perm")
def _le(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """One P for all blocks: every block of every pair is an observation of each nibble slot."""
    block = template.block_size
    z_p, z_c = nibble_vectors(plain, block).flatten(0, 1), nibble_vectors(cipher, block).flatten(0, 1)
    perm, unique = assignment(consistent_slots(z_c, z_p, 15))
    return {"perm": perm}, unique


@solver(lambda t, block: t.within_block == "nibble_shuffle" and t.per_position_key and t.block_scrambling, "perms", "block_perm")
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


@solver(
    lambda t, block: t.within_block == "dihedral" and t.colour_space == "rgb" and t.channel_shuffle,
    "geometry", "negpos", "channel_perm", "block_perm",
)
def _etc(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    return _blockwise_etc(template, plain, cipher, colour_orders=True)


@solver(lambda t, block: t.within_block == "dihedral" and t.colour_space == "ycbcr_planes", "geometry", "negpos", "block_perm")
def _etc_gray(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """As EtC on the H x 3W YCbCr gray image (the public colour transform applied to the plain pairs)."""
    layout = Layout("planes", plain.shape[1], "ycbcr")
    return _blockwise_etc(template, layout.unview(layout.from_plain_colour(plain)), cipher, colour_orders=False)


@solver(
    lambda t, block: block == 1 and t.within_block == "none" and not t.block_scrambling and t.channel_shuffle,
    "negpos", "channel_perm",
)
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


@solver(
    lambda t, block: t.keystream == "substitution" and not (t.position_permuting or t.per_position_key or t.negative_positive),
    "ffx_mask", "sbox",
)
def _substitution(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    """One byte substitution ``sbox`` at the block-vector slots ``ffx_mask`` selects (``ak_ffx``).

    A slot is selected once a pair shows a value changed there; every selected slot's pairs pin
    ``sbox[x] = y``.  The sbox is determined when each byte value is pinned or is the only one left;
    then a slot whose observed values are all fixed points of the sbox stays open.
    """
    count, channels, height, width = plain.shape
    _, slot = block_vector_index(channels, height, width, template.block_size)
    slots = torch.from_numpy(slot).to(plain.device).expand(count, -1)
    x, y = plain.flatten(1).long(), cipher.flatten(1).long()
    length = channels * template.block_size**2
    moved = torch.zeros(length, dtype=torch.long, device=x.device).index_add_(0, slots.flatten(), (x != y).long().flatten()) > 0
    selected = moved[slots]
    pinned = torch.zeros(BYTE_VALUES, BYTE_VALUES, dtype=torch.bool, device=x.device)
    pinned[x[selected], y[selected]] = True
    unseen = ~pinned.any(1)
    consistent = pinned | (unseen[:, None] & ~pinned.any(0)[None, :])  # an unseen value may take any free image
    sbox, sbox_unique = assignment(consistent)
    # a slot not seen moving is identity once some value observed there is not a fixed point of the sbox
    not_fixed = torch.from_numpy(sbox != np.arange(BYTE_VALUES)).to(x.device)[x]
    decided = moved | (torch.zeros(length, dtype=torch.long, device=x.device).index_add_(0, slots.flatten(), not_fixed.long().flatten()) > 0)
    return {"ffx_mask": moved.long().cpu().numpy(), "sbox": sbox}, sbox_unique and bool(decided.all())


class RecoveredByteMap(IndexMapCipher):
    """A gather + XOR map recovered from pairs, for ciphers known only as a ``byte_map``.

    Its key is the map itself (``index``, ``mask`` over the flattened ciphertext), so it can
    decrypt whatever cipher produced it without knowing that cipher's own key layout.
    """

    def __init__(self, index: object, mask: object, shape: tuple[int, int, int]) -> None:
        super().__init__(1)
        self.shape = tuple(int(v) for v in shape)
        self.index = np.asarray(index, dtype=np.int64)
        self.mask = np.asarray(mask, dtype=np.uint8)
        if self.index.shape != (math.prod(self.shape),) or self.mask.shape != self.index.shape:
            raise ValueError(f"index and mask must both have {math.prod(self.shape)} entries for shape {self.shape}")

    channels = None

    @classmethod
    def from_seed(cls, seed, image_size, block_size=None, **options) -> "RecoveredByteMap":
        raise TypeError("a recovered byte map comes from known pairs, not from a seed")

    def key(self) -> dict[str, np.ndarray]:
        return {"index": self.index.copy(), "mask": self.mask.copy()}

    def rebuild(self, **key: object) -> "RecoveredByteMap":
        return type(self)(**{**self.key(), **key}, shape=self.shape)

    def key_space(self) -> int:
        return 1

    def index_map(self, channels: int, height: int, width: int) -> np.ndarray:
        if (channels, height, width) != self.shape:
            raise ValueError(f"this byte map was recovered for images {self.shape}, got {(channels, height, width)}")
        return self.index

    def xor_mask(self, channels: int, height: int, width: int) -> np.ndarray:
        return self.mask


def byte_map_solver(plain: torch.Tensor, cipher: torch.Tensor) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(index, mask, determined)`` of ``c[j] = x[index[j]] ^ mask[j]`` from k >= 1 pairs.

    Byte j of a ciphertext and byte i of its plain image can correspond only if their XOR
    differences to the first pair agree in every pair (the mask cancels); with the first pair's
    own values that gives one label per position (``torch.unique``), and positions are matched
    within equal labels.  Determined when every label occurs exactly once on each side.
    """
    p, c = plain.flatten(1), cipher.flatten(1)  # [k, L]
    keys_p = (p[1:] ^ p[:1]).T.contiguous()  # [L, k - 1]: XOR differences to the first pair
    keys_c = (c[1:] ^ c[:1]).T.contiguous()
    # the first value differs by the unknown mask: only the differences identify a position
    differences = torch.cat([keys_p, keys_c])
    if differences.shape[1] == 0:  # one pair: no differences, every position looks alike
        labels = torch.zeros(differences.shape[0], dtype=torch.long, device=differences.device)
    else:
        labels = torch.unique(differences, dim=0, return_inverse=True)[1]
    label_p, label_c = labels.split(p.shape[1])
    order_p, order_c = torch.argsort(label_p, stable=True), torch.argsort(label_c, stable=True)
    matched = label_p[order_p].equal(label_c[order_c])
    index = torch.empty_like(order_c)
    index[order_c] = order_p  # the k-th ciphertext position of a label takes the k-th plain one
    counts = torch.bincount(label_p)
    determined = bool(matched and (counts == 1).all())
    mask = (c[0] ^ p[0, index]).to(torch.uint8)
    return index.cpu().numpy(), mask.cpu().numpy(), determined


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


def _generic(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    index, mask, determined = byte_map_solver(plain, cipher)
    return {"index": index, "mask": mask}, determined


def choose_solver(family: CipherFamily) -> Solver | None:
    """The structural solver the family's traits and key entries call for, else the generic byte map."""
    traits, names = family.traits, set(family.template.key())
    for applies, entries, function in STRUCTURAL:
        if applies(traits, family.resolved_block_size) and set(entries) <= names:
            return function
    return _generic if traits.byte_map else None


@attacks.register("kpa", "known_plaintext")
class KnownPlaintextAttack(KeyRecoveryAttack):
    """Exact key recovery from the fewest known pairs; decrypts with the recovered key."""

    threat_model = "known-plaintext"
    uses_known_pairs = True

    @classmethod
    def applies_to(cls, family: CipherFamily) -> str | None:
        reason = super().applies_to(family)
        if reason is not None:
            return reason
        if family.per_image_key:
            return "every image has its own key: pairs under other images' keys say nothing about the victim's"
        if family.options.get("transport") is not None:
            return ("its solvers compare values exactly, and ciphertexts through a lossy channel (transport) match no key "
                    "exactly; a noise-tolerant known-plaintext attack is not built")
        if choose_solver(family) is None:
            return (
                f"{family.canonical_name} declares no structure kpa can solve (traits: no byte_map, "
                "and no structural solver for its within-block transform and key entries)"
            )
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
        solve = choose_solver(self.family)
        assert solve is not None
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
        self.recovered_cipher = self._rebuild(key)
        reproduced = self._reproduced(plain, cipher)
        if determined and reproduced < available:
            determined = False
            self.note = (
                f"the key read from {k} pair(s) re-encrypts only {reproduced} of the {available} known pairs: "
                f"{self.family.canonical_name}'s declared traits do not describe what it does, so no key is claimed"
            )
        elif determined:
            self.note = f"key determined by {k} known pair(s), checked: it re-encrypts all {available}"
        else:
            self.note = f"{available} known pairs leave the key open; decrypted with the best consistent guess"
        self.extra = {"pairs_given": float(available), "pairs_reproduced": reproduced / available,
                      **({"pairs_needed": float(k)} if determined else {})}

    def _reproduced(self, plain: torch.Tensor, cipher: torch.Tensor) -> int:
        """How many known pairs the recovered key encrypts to exactly their ciphertexts: a claim
        that the key is determined is only made when it holds for all of them."""
        assert self.recovered_cipher is not None
        encrypted = self.recovered_cipher.encrypt(plain)
        if encrypted.shape != cipher.shape:
            return 0
        return int((encrypted == cipher).flatten(1).all(1).sum())

    def _rebuild(self, key: dict[str, np.ndarray]) -> Cipher:
        assert self.family is not None and self.channels is not None
        if set(key) == {"index", "mask"} and "index" not in self.family.template.key():
            return RecoveredByteMap(key["index"], key["mask"], (self.channels, *self.family.image_size))
        return self.family.template.rebuild(**key)
