"""One security cell: encrypt the victim's images, run an attack, score the restoration.

The security cell (``harness.run.cells.security``) calls :func:`run_security_cell` once per (dataset, cipher,
attack).  The last ``config.known_pairs`` victim images are the pool the known-plaintext attack
draws its pairs from; every attack is evaluated on the images before them, so all attacks of a
cipher are scored on the same images and no attack is ever scored on a pair it was given.

In the seed's threat model the attacker is the provider, who receives the encrypted training
set as well as the test images: attacks that use the victim's ciphertexts see the evaluated
test ciphertexts *and* the victim's training images encrypted under the same key
(``pool_images``), and are scored on the test images only.  Statistical attacks are also fitted
on the first n of those ciphertexts for every n of a ladder, giving SSIM against the number of
ciphertexts the provider holds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attacks.base import Attack, AttackConfig, CipherFamily, ProviderModels, check_batch
from ciphers.base import Cipher
from harness.cache import cache_key, load_checkpoint, save_checkpoint, tensor_digest
from harness.lazy import LazyImages, as_lazy, release_freed_memory
from harness.progress import ProgressCallback
from harness.registry import attacks
from harness.run.scoring import (
    InvariantScores,
    Scores,
    encrypt_lazily,
    identification,
    key_entries_recovered,
    positions_recovered,
    score_restorations,
)

#: numbers of victim ciphertexts a statistical attack is also fitted on (those below what it holds)
CIPHERTEXT_LADDER = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: ``ciphertexts_needed``: the fewest on the ladder whose restoration reaches this mean SSIM
RESTORED_SSIM = 0.95


class AttackNotApplicable(ValueError):
    """The attack cannot run on this cipher family; the message is the reason (for an n/a row)."""


@dataclass
class SecurityResult:
    """What one security cell measured.

    ``restored``: the attack's uint8 images of the evaluated victim images (as it output them);
    ``ssim``/``psnr``: per image, against the plain images; ``identified``: per image, whether the
    restoration is more similar to its own plain image than to any other evaluated one;
    ``invariant``: the same three scores up to the content-keeping transform
    (:mod:`harness.symmetry`) that fits the restorations best, ``symmetry``: that transform;
    ``extra``: numbers the attack or the cell measured (e.g. ``pairs_needed``,
    ``positions_recovered``, ``ciphertexts_seen``, training losses; always finite); ``curve``:
    (ciphertexts seen, mean symmetry-invariant SSIM) of a statistical attack's ladder; ``note``:
    one line for the report.
    """

    restored: torch.Tensor
    ssim: torch.Tensor
    psnr: torch.Tensor
    identified: torch.Tensor
    invariant: "InvariantScores"
    extra: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)
    note: str = ""
    cached: bool = False
    fit_seconds: float = 0.0


def attack_cache_path(
    cache_dir: Path, attack: type[Attack], family: CipherFamily, config: AttackConfig, attacker_images: torch.Tensor | LazyImages,
    victim_ciphertexts: torch.Tensor | LazyImages | None,
) -> Path:
    """Where a learned attack's state lives: a hash of everything that determines it (never a key)."""
    key = cache_key(
        kind="attack",
        attack=attack.registry_name,
        version=attack.version,
        family=family.to_dict(),
        config=config.to_dict(),
        attacker=tensor_digest(attacker_images),
        victim=None if victim_ciphertexts is None else tensor_digest(victim_ciphertexts),
    )
    return Path(cache_dir) / f"attack-{attack.registry_name}-{key}.pt"


def run_security_cell(
    attack: str,
    family: CipherFamily,
    victim_cipher: Cipher,
    victim_images: torch.Tensor | LazyImages,
    attacker_images: torch.Tensor | LazyImages,
    config: AttackConfig,
    *,
    cache_dir: Path | None,
    pool_images: torch.Tensor | LazyImages | None = None,
    ladder: tuple[int, ...] = CIPHERTEXT_LADDER,
    device: str | torch.device = "cpu",
    refresh_cache: bool = False,
    progress: ProgressCallback | None = None,
    keep_restored: int | None = None,
    models: ProviderModels | None = None,
) -> SecurityResult:
    """Encrypt ``victim_images`` with ``victim_cipher``, attack them, score SSIM/PSNR per image.

    ``pool_images``: the victim's other images under the same key (its training set), which
    attacks that use victim ciphertexts also see; ``ladder``: ciphertext counts for the curve of a
    statistical attack (empty: no curve); ``keep_restored``: how many restorations the result
    holds (None: all); ``models``: the provider's models a model-holder attack reads.  Images may
    be :class:`LazyImages`: the cell then encrypts, restores and
    scores them a chunk at a time on ``device`` and never holds a split at once (paper sizes).
    Raises :class:`AttackNotApplicable` when the attack does not apply to ``family``, and
    :class:`harness.cache.CorruptCacheError` when a cached learned attack cannot be read.
    """
    attack_cls = attacks.get(attack)
    reason = attack_cls.applies_to(family)
    if reason is not None:
        raise AttackNotApplicable(reason)
    device = torch.device(device)
    views = _VictimViews.of(attack_cls, family, victim_cipher, victim_images, pool_images, config.known_pairs, device)
    fitter = _Fitter(attack_cls, family, config, attacker_images, views.pairs, cache_dir, refresh_cache, progress, device, models)
    start = time.perf_counter()
    instance, cached = fitter.fit(views.seen)
    fit_seconds = time.perf_counter() - start
    release_freed_memory()  # what the fit freed is not kept while the scoring pass runs
    keep = len(views.evaluated) if keep_restored is None else int(keep_restored)
    scores = score_restorations(instance, victim_cipher, views.evaluated, device, keep)
    extra = _key_recovery_extras(instance, attack_cls, victim_cipher, family, views.evaluated.image_shape[0])
    curve: list[tuple[int, float]] = []
    if views.seen is not None:
        extra["ciphertexts_seen"] = float(len(views.seen))
        if attack_cls.statistical:
            curve = _ciphertext_curve(fitter, views, victim_cipher, ladder, scores, device)
            reached = [count for count, value in curve if value >= RESTORED_SSIM]  # symmetry-invariant SSIM
            if reached:
                extra["ciphertexts_needed"] = float(reached[0])
    identified, invariant = identification(scores, views.evaluated, family.image_size)
    return SecurityResult(
        restored=scores.kept, ssim=scores.ssim, psnr=scores.psnr, identified=identified, invariant=invariant,
        extra=extra, curve=curve, note=instance.note, cached=cached, fit_seconds=fit_seconds,
    )


@dataclass
class _VictimViews:
    """The victim's images as the cell uses them: the evaluated ones, the known-pair pool and
    every ciphertext an attack on victim ciphertexts sees (test first, then the training set)."""

    evaluated: LazyImages
    pairs: tuple[torch.Tensor, torch.Tensor] | None
    seen: LazyImages | None

    @classmethod
    def of(cls, attack_cls: type[Attack], family: CipherFamily, cipher: Cipher, victim_images, pool_images, pool: int,
           device: torch.device) -> "_VictimViews":
        check_batch(victim_images, "victim_images", (1, victim_images.shape[1], *family.image_size))
        victim = as_lazy(victim_images)
        n = len(victim)
        if n <= pool:
            raise ValueError(f"victim_images holds {n} images; it needs more than known_pairs = {pool}")
        ciphertexts = encrypt_lazily(cipher, victim, 0, device)
        pairs = (victim[n - pool :].to(device), ciphertexts[n - pool :]) if attack_cls.uses_known_pairs else None
        seen = None
        if attack_cls.uses_victim_ciphertexts:
            parts = [ciphertexts.head(n - pool)]
            if pool_images is not None and pool_images.shape[0]:
                parts.append(encrypt_lazily(cipher, as_lazy(pool_images), n, device))
            seen = LazyImages.concat(parts)
        return cls(victim.head(n - pool), pairs, seen)


@dataclass
class _Fitter:
    """Fits (or loads from the cache) an attack on a given set of victim ciphertexts."""

    attack_cls: type[Attack]
    family: CipherFamily
    config: AttackConfig
    attacker_images: torch.Tensor | LazyImages
    pairs: tuple[torch.Tensor, torch.Tensor] | None
    cache_dir: Path | None
    refresh_cache: bool
    progress: ProgressCallback | None
    device: torch.device
    models: ProviderModels | None = None

    def fit(self, victim_seen: LazyImages | None) -> tuple[Attack, bool]:
        instance = self.attack_cls(seed=self.config.seed, device=self.device, **self.config.params)
        path = None
        if self.attack_cls.learned and self.cache_dir is not None:
            path = attack_cache_path(Path(self.cache_dir), self.attack_cls, self.family, self.config, self.attacker_images, victim_seen)
        cached = path is not None and path.exists() and not self.refresh_cache
        if cached:
            instance.load_state_dict(load_checkpoint(path))
        else:
            instance.fit(self.attacker_images, self.family, self.config, self.progress, victim_ciphertexts=victim_seen, known_pairs=self.pairs,
                         models=self.models)
            if path is not None:
                save_checkpoint(path, instance.state_dict())
        return instance, cached


def _key_recovery_extras(instance: Attack, attack_cls: type[Attack], victim_cipher: Cipher, family: CipherFamily, channels: int) -> dict[str, float]:
    """The attack's own finite numbers, plus what a position probe and the recovered key show."""
    extra = {name: value for name, value in instance.extra.items() if math.isfinite(value)}
    if attack_cls.restores_positions:
        recovered = positions_recovered(instance, victim_cipher, channels, family.image_size)
        if math.isfinite(recovered):
            extra["positions_recovered"] = recovered
    entries = key_entries_recovered(getattr(instance, "recovered_cipher", None), victim_cipher)
    if entries is not None:
        extra["key_entries_recovered"] = entries
    return extra


def _ciphertext_curve(fitter: _Fitter, views: _VictimViews, cipher: Cipher, ladder: tuple[int, ...], scores: Scores,
                      device: torch.device) -> list[tuple[int, float]]:
    """(ciphertexts seen, mean invariant SSIM) refitted on the first n for every n of the ladder below all."""
    assert views.seen is not None
    curve = []
    for count in (c for c in ladder if c < len(views.seen)):
        smaller, _ = fitter.fit(views.seen.head(count))
        curve.append((count, float(score_restorations(smaller, cipher, views.evaluated, device, 0).invariant_ssim.mean())))
    return curve + [(len(views.seen), float(scores.invariant_ssim.mean()))]
