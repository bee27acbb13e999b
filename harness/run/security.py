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
from typing import Any

import numpy as np
import torch

from attacks.base import Attack, AttackConfig, CipherFamily, check_batch
from ciphers.base import Cipher
from harness.cache import cache_key, load_checkpoint, save_checkpoint, tensor_digest
from harness.lazy import LazyImages, as_lazy, release_freed_memory
from harness.metrics import IDENTIFICATION_SIDE, identify, identity_features, psnr, ssim
from harness.progress import ProgressCallback
from harness.registry import attacks
from harness.stats import mean_interval, wilson_interval
from harness.symmetry import Symmetry, SymmetryScores, feature_grid, selection_images, transform_features

#: values of a position code differ by at least this much in some channel (survives +-1 rounding)
_CODE_SPACING = 4
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


@dataclass
class InvariantScores:
    """Per-image scores under the cell's chosen content-keeping transform."""

    symmetry: Symmetry
    ssim: torch.Tensor
    psnr: torch.Tensor
    identified: torch.Tensor


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


def position_codes(channels: int, image_size: tuple[int, int]) -> torch.Tensor | None:
    """A probe image whose every pixel is distinct: the pixel's raster index in base 64, x 4.

    Restoring its ciphertext shows which positions an attack puts back (a rearrangement attack
    is independent of content).  None when the channels cannot tell all positions apart.
    """
    height, width = image_size
    base = 256 // _CODE_SPACING
    if base**channels < height * width:
        return None
    index = torch.arange(height * width)
    digits = [(index // base**c) % base * _CODE_SPACING for c in range(channels)]
    return torch.stack(digits).view(1, channels, height, width).to(torch.uint8)


def positions_recovered(attack: Attack, victim_cipher: Cipher, channels: int, image_size: tuple[int, int]) -> float:
    """Fraction of pixel positions whose content the attack restores to the right place."""
    probe = position_codes(channels, image_size)
    if probe is None:
        return math.nan
    restored = attack.restore(victim_cipher.encrypt(probe))
    error = (restored.int() - probe.int()).abs().amax(dim=1)
    return float((error <= victim_cipher.roundtrip_max_error).double().mean())


def key_entries_recovered(recovered: Cipher | None, victim: Cipher) -> float | None:
    """Share of the victim key's entries (all key arrays, element by element) that ``recovered``
    holds, when it is a cipher of the same kind; None when the two keys are not comparable."""
    if recovered is None or type(recovered) is not type(victim):
        return None
    mine, theirs = recovered.key(), victim.key()
    if set(mine) != set(theirs) or any(np.shape(mine[k]) != np.shape(theirs[k]) for k in theirs):
        return None
    equal = sum(int((np.asarray(mine[k]) == np.asarray(theirs[k])).sum()) for k in theirs)
    total = sum(int(np.asarray(theirs[k]).size) for k in theirs)
    return equal / total if total else 1.0


#: pixel values restored and scored at once in a cell (uint8): 2^23 (8,192 images of 32 x 32, 55
#: of 224 x 224) bounds a cell's working set however many images it evaluates
STREAM_VALUES = 2**23


def stream_chunk(image_shape: tuple[int, ...]) -> int:
    """Images per chunk of a streamed security cell (at most 1,024: the restoration batch)."""
    return int(min(1024, max(1, STREAM_VALUES // math.prod(image_shape))))


def encrypted(cipher: Cipher, images: LazyImages, first_id: int, device: torch.device) -> LazyImages:
    """``images`` encrypted a batch at a time on ``device``; per-image keys follow ids from ``first_id``."""
    shape = tuple(cipher.encrypted_shape((1, *images.image_shape)))[1:]

    def encrypt(batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ids = index + first_id if cipher.per_image_key else None
        return cipher.encrypt(batch.to(device), image_ids=ids)

    return images.map(encrypt, shape)


@dataclass
class _Scores:
    """Per-image scores of one restoration pass over the evaluated images, raw and invariant."""

    ssim: torch.Tensor
    psnr: torch.Tensor
    features: torch.Tensor
    kept: torch.Tensor
    symmetry: Symmetry
    invariant_ssim: torch.Tensor
    invariant_psnr: torch.Tensor


class _InvariantPass:
    """Chooses the transform on the first :func:`selection_images` restorations (every transform
    scored from their statistics), then scores the remaining ones under that transform only."""

    def __init__(self, image_shape: tuple[int, ...]) -> None:
        self.scan = SymmetryScores(*image_shape)
        self.selection = selection_images(image_shape)
        self.seen = 0
        self.chosen: Symmetry | None = None
        self.later_ssim: list[torch.Tensor] = []
        self.later_psnr: list[torch.Tensor] = []

    def add(self, restored: torch.Tensor, plain: torch.Tensor) -> None:
        take = max(0, min(restored.shape[0], self.selection - self.seen))
        if take:
            self.scan.add(restored[:take], plain[:take])
            self.seen += take
        if take < restored.shape[0]:
            symmetry = self.choose()
            moved = symmetry.apply(restored[take:])
            self.later_ssim.append(ssim(moved, plain[take:]).cpu())
            self.later_psnr.append(psnr(moved, plain[take:]).cpu())

    def choose(self) -> Symmetry:
        if self.chosen is None:
            self.chosen = self.scan.best()
        return self.chosen

    def scores(self) -> tuple[Symmetry, torch.Tensor, torch.Tensor]:
        symmetry = self.choose()
        first_ssim, first_psnr = self.scan.scores(symmetry)
        return symmetry, torch.cat([first_ssim, *self.later_ssim]), torch.cat([first_psnr, *self.later_psnr])


def _score(instance: Attack, cipher: Cipher, plain: LazyImages, device: torch.device, keep: int) -> _Scores:
    """Restore and score the evaluated images a chunk at a time (raw and up to the content-keeping
    transforms); keeps the first ``keep`` restorations."""
    ssims, psnrs, features, kept = [], [], [], []
    invariant = _InvariantPass(plain.image_shape)
    chunk = stream_chunk(plain.image_shape)
    held = 0
    for start in range(0, len(plain), chunk):
        index = torch.arange(start, min(start + chunk, len(plain)))
        images = plain.take(index).to(device)
        restored = instance.restore(cipher.encrypt(images, image_ids=index if cipher.per_image_key else None)).to(device)
        ssims.append(ssim(restored, images).cpu())
        psnrs.append(psnr(restored, images).cpu())
        features.append(identity_features(restored).cpu())
        invariant.add(restored, images)
        if held < keep:
            kept.append(restored[: keep - held].cpu())
            held += kept[-1].shape[0]
        del images, restored
        release_freed_memory()
    empty = torch.empty((0, *plain.image_shape), dtype=torch.uint8)
    symmetry, invariant_ssim, invariant_psnr = invariant.scores()
    return _Scores(torch.cat(ssims), torch.cat(psnrs), torch.cat(features), torch.cat(kept) if kept else empty,
                   symmetry, invariant_ssim, invariant_psnr)


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
) -> SecurityResult:
    """Encrypt ``victim_images`` with ``victim_cipher``, attack them, score SSIM/PSNR per image.

    ``pool_images``: the victim's other images under the same key (its training set), which
    attacks that use victim ciphertexts also see; ``ladder``: ciphertext counts for the curve of a
    statistical attack (empty: no curve); ``keep_restored``: how many restorations the result
    holds (None: all).  Images may be :class:`LazyImages`: the cell then encrypts, restores and
    scores them a chunk at a time on ``device`` and never holds a split at once (paper sizes).
    Raises :class:`AttackNotApplicable` when the attack does not apply to ``family``, and
    :class:`harness.cache.CorruptCacheError` when a cached learned attack cannot be read.
    """
    attack_cls = attacks.get(attack)
    reason = attack_cls.applies_to(family)
    if reason is not None:
        raise AttackNotApplicable(reason)
    check_batch(victim_images, "victim_images", (1, victim_images.shape[1], *family.image_size))
    device = torch.device(device)
    victim = as_lazy(victim_images)
    n, pool = len(victim), config.known_pairs
    if n <= pool:
        raise ValueError(f"victim_images holds {n} images; it needs more than known_pairs = {pool}")
    evaluated = victim.head(n - pool)
    ciphertexts = encrypted(victim_cipher, victim, 0, device)
    pairs = (victim[n - pool :].to(device), ciphertexts[n - pool :]) if attack_cls.uses_known_pairs else None
    seen = None
    if attack_cls.uses_victim_ciphertexts:
        parts = [ciphertexts.head(n - pool)]
        if pool_images is not None and pool_images.shape[0]:
            parts.append(encrypted(victim_cipher, as_lazy(pool_images), n, device))
        seen = LazyImages.concat(parts)

    def fitted(victim_seen: LazyImages | None) -> tuple[Attack, bool]:
        instance = attack_cls(seed=config.seed, device=device, **config.params)
        path = None
        if attack_cls.learned and cache_dir is not None:
            path = attack_cache_path(Path(cache_dir), attack_cls, family, config, attacker_images, victim_seen)
        cached = path is not None and path.exists() and not refresh_cache
        if cached:
            instance.load_state_dict(load_checkpoint(path))
        else:
            instance.fit(attacker_images, family, config, progress, victim_ciphertexts=victim_seen, known_pairs=pairs)
            if path is not None:
                save_checkpoint(path, instance.state_dict())
        return instance, cached

    start = time.perf_counter()
    instance, cached = fitted(seen)
    fit_seconds = time.perf_counter() - start
    release_freed_memory()  # what the fit freed is not kept while the scoring pass runs

    keep = len(evaluated) if keep_restored is None else int(keep_restored)
    scores = _score(instance, victim_cipher, evaluated, device, keep)
    extra = {name: value for name, value in instance.extra.items() if math.isfinite(value)}
    if attack_cls.restores_positions:
        recovered = positions_recovered(instance, victim_cipher, victim.image_shape[0], family.image_size)
        if math.isfinite(recovered):
            extra["positions_recovered"] = recovered
    entries = key_entries_recovered(getattr(instance, "recovered_cipher", None), victim_cipher)
    if entries is not None:
        extra["key_entries_recovered"] = entries
    curve: list[tuple[int, float]] = []
    if seen is not None:
        extra["ciphertexts_seen"] = float(len(seen))
        if attack_cls.statistical:
            for count in (c for c in ladder if c < len(seen)):
                smaller, _ = fitted(seen.head(count))
                curve.append((count, float(_score(smaller, victim_cipher, evaluated, device, 0).invariant_ssim.mean())))
            curve.append((len(seen), float(scores.invariant_ssim.mean())))
            reached = [count for count, value in curve if value >= RESTORED_SSIM]  # symmetry-invariant SSIM
            if reached:
                extra["ciphertexts_needed"] = float(reached[0])
    gallery = torch.cat([identity_features(chunk) for chunk in evaluated.chunks(stream_chunk(evaluated.image_shape))])
    grid = feature_grid(*family.image_size, IDENTIFICATION_SIDE)
    invariant = InvariantScores(
        scores.symmetry, scores.invariant_ssim, scores.invariant_psnr,
        identify(transform_features(scores.features, scores.symmetry, grid), gallery),
    )
    return SecurityResult(
        restored=scores.kept,
        ssim=scores.ssim,
        psnr=scores.psnr,
        identified=identify(scores.features, gallery),
        invariant=invariant,
        extra=extra,
        curve=curve,
        note=instance.note,
        cached=cached,
        fit_seconds=fit_seconds,
    )


#: PSNR of an exact restoration is infinite; means cap it here so one exact image does not make the mean inf
PSNR_CAP_DB = 100.0


def mean_row(base: dict[str, Any], metric: str, values: torch.Tensor) -> dict[str, Any]:
    """Mean with a normal-approximation 95% interval over images (infinite values capped, noted)."""
    array = values.detach().double().cpu().numpy()
    note = base.get("note", "")
    infinite = ~np.isfinite(array)
    if infinite.any():
        array = np.minimum(array, PSNR_CAP_DB)
        note = "; ".join(filter(None, [note, f"{metric} capped at {PSNR_CAP_DB:g} for exact restorations"]))
    mean, low, high = mean_interval(array)
    if infinite.any():
        low = high = float("nan")
    return {**base, "metric": metric, "value": mean, "ci95_low": low, "ci95_high": high, "n": int(array.size), "note": note}


def _identification_row(base: dict[str, Any], metric: str, identified: torch.Tensor, how: str) -> dict[str, Any]:
    hits = identified.double().cpu().numpy()
    rate, low, high = wilson_interval(float(hits.sum()), hits.size)
    return {**base, "metric": metric, "value": rate, "ci95_low": low, "ci95_high": high, "n": hits.size,
            "note": f"top-1 among {hits.size} images{how} (chance {1 / hits.size:.4f}); Wilson interval"}


def security_rows(
    base: dict[str, Any], result: SecurityResult, examples: int
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[tuple[str, np.ndarray, np.ndarray]]]:
    """A security cell's result rows, per-image scores and example restorations.

    Raw scores (``ssim``, ``abs_ssim``, ``psnr``, ``identification``) sit beside the scores up
    to the chosen content-keeping transform (``*_invariant``; the ``symmetry`` row names it and
    is 1 when it is not the identity), which the verdicts use.
    """
    ok = {**base, "status": "ok", "note": result.note}
    invariant = result.invariant
    moved = f" after the transform '{invariant.symmetry.label}'"
    rows = [
        mean_row(ok, "ssim", result.ssim),
        mean_row(ok, "abs_ssim", result.ssim.abs()),
        mean_row(ok, "psnr", result.psnr),
        _identification_row(ok, "identification", result.identified, ""),
        mean_row(ok, "ssim_invariant", invariant.ssim),
        mean_row(ok, "psnr_invariant", invariant.psnr),
        _identification_row(ok, "identification_invariant", invariant.identified, moved),
        {**ok, "metric": "symmetry", "value": float(not invariant.symmetry.is_identity),
         "note": f"content-keeping transform that fits the restorations best: {invariant.symmetry.label}"},
    ]
    rows += [{**ok, "metric": name, "value": float(value)} for name, value in sorted(result.extra.items())]
    rows += [{**ok, "metric": "ssim_vs_ciphertexts", "value": value, "n": seen,
              "note": "n = victim ciphertexts the attack saw; symmetry-invariant SSIM"} for seen, value in result.curve]
    per_image = {
        "ssim": result.ssim.cpu().numpy(),
        "psnr": np.minimum(result.psnr.double().cpu().numpy(), PSNR_CAP_DB),
        "identified": result.identified.double().cpu().numpy(),
        "ssim_invariant": invariant.ssim.cpu().numpy(),
        "psnr_invariant": np.minimum(invariant.psnr.double().cpu().numpy(), PSNR_CAP_DB),
        "identified_invariant": invariant.identified.double().cpu().numpy(),
    }
    restored = result.restored[:examples].cpu().numpy()
    return rows, per_image, [(str(base["attack"]), restored, result.ssim[:examples].cpu().numpy())]
