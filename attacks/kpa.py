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

from attacks.base import Attack, AttackConfig, CipherFamily, from_image
from ciphers.base import Cipher
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


@solver("plain")
def _plain(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    return {}, True


@solver("proposed")
def _proposed(template: Cipher, plain: torch.Tensor, cipher: torch.Tensor) -> tuple[dict[str, np.ndarray], bool]:
    block = template.block_size
    p, c = subblocks(pixel_codes(plain), block), subblocks(pixel_codes(cipher), block)
    sig_p, sig_c = p.sort(-1).values, c.sort(-1).values
    blocks_ok = torch.ones(c.shape[1], p.shape[1], dtype=torch.bool, device=p.device)
    for i in range(p.shape[0]):  # over pairs: AND of "same four sub-block multisets"
        blocks_ok &= (sig_c[i].unsqueeze(1) == sig_p[i].unsqueeze(0)).flatten(2).all(-1)
    block_perm, blocks_unique = assignment(blocks_ok)
    aligned = p[:, torch.from_numpy(block_perm).to(p.device)]
    # positions_ok[s, t]: ciphertext position s holds plain position t in every sub-block seen
    positions_ok = (c.unsqueeze(-1) == aligned.unsqueeze(-2)).flatten(0, 2).all(0)
    pixel_perm, positions_unique = assignment(positions_ok)
    return {"block_perm": block_perm, "pixel_perm": pixel_perm}, blocks_unique and positions_unique


@attacks.register("kpa", "known_plaintext")
class KnownPlaintextAttack(Attack):
    """Exact key recovery from the fewest known pairs; decrypts with the recovered key."""

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
        plain, cipher = pairs[0], from_image(pairs[1], self.layout)
        available = plain.shape[0]
        counts = [0] if template.key_space() == 1 else range(1, available + 1)
        for k in counts:
            key, determined = solve(template, plain[:k], cipher[:k])
            report(progress, k, available, f"kpa: {k} pair(s), key {'determined' if determined else 'open'}")
            if determined:
                break
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
        return self._cipher.decrypt(from_image(ciphertexts, self.layout))

    def _state(self) -> dict[str, object]:
        assert self.key is not None
        return {"key": {name: torch.from_numpy(np.asarray(value)) for name, value in self.key.items()}}

    def _load_state(self, state) -> None:
        assert self.family is not None
        self.key = {name: value.numpy() for name, value in state["key"].items()}
        self._cipher = self.family.template.rebuild(**self.key)
