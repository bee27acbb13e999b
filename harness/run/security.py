"""One security cell: encrypt the victim's images, run an attack, score the restoration.

The runner (``harness.run.bench``) calls :func:`run_security_cell` once per (dataset, cipher,
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

import numpy as np
import torch

from attacks.base import Attack, AttackConfig, CipherFamily, check_batch
from ciphers.base import Cipher
from harness.cache import cache_key, load_checkpoint, save_checkpoint, tensor_digest
from harness.metrics import identification, psnr, ssim
from harness.progress import ProgressCallback
from harness.registry import attacks

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

    ``restored``: the attack's uint8 images of the evaluated victim images; ``ssim``/``psnr``: per
    image, against the plain images; ``identified``: per image, whether the restoration is more
    similar to its own plain image than to any other evaluated one; ``extra``: numbers the attack
    or the cell measured (e.g. ``pairs_needed``, ``positions_recovered``, ``ciphertexts_seen``,
    training losses; always finite); ``curve``: (ciphertexts seen, mean SSIM) of a statistical
    attack's ladder; ``note``: one line for the report.
    """

    restored: torch.Tensor
    ssim: torch.Tensor
    psnr: torch.Tensor
    identified: torch.Tensor
    extra: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)
    note: str = ""
    cached: bool = False
    fit_seconds: float = 0.0


def attack_cache_path(
    cache_dir: Path, attack: type[Attack], family: CipherFamily, config: AttackConfig, attacker_images: torch.Tensor,
    victim_ciphertexts: torch.Tensor | None,
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


def run_security_cell(
    attack: str,
    family: CipherFamily,
    victim_cipher: Cipher,
    victim_images: torch.Tensor,
    attacker_images: torch.Tensor,
    config: AttackConfig,
    *,
    cache_dir: Path | None,
    pool_images: torch.Tensor | None = None,
    ladder: tuple[int, ...] = CIPHERTEXT_LADDER,
    device: str | torch.device = "cpu",
    refresh_cache: bool = False,
    progress: ProgressCallback | None = None,
) -> SecurityResult:
    """Encrypt ``victim_images`` with ``victim_cipher``, attack them, score SSIM/PSNR per image.

    ``pool_images``: the victim's other images under the same key (its training set), which
    attacks that use victim ciphertexts also see; ``ladder``: ciphertext counts for the curve of a
    statistical attack (empty: no curve).  Raises :class:`AttackNotApplicable` when the attack
    does not apply to ``family``, and :class:`harness.cache.CorruptCacheError` when a cached
    learned attack cannot be read.
    """
    attack_cls = attacks.get(attack)
    reason = attack_cls.applies_to(family)
    if reason is not None:
        raise AttackNotApplicable(reason)
    check_batch(victim_images, "victim_images", (1, victim_images.shape[1], *family.image_size))
    n, pool = victim_images.shape[0], config.known_pairs
    if n <= pool:
        raise ValueError(f"victim_images holds {n} images; it needs more than known_pairs = {pool}")
    ids = torch.arange(n) if victim_cipher.per_image_key else None
    ciphertexts = victim_cipher.encrypt(victim_images, image_ids=ids)
    evaluated, victim_ciphertexts = victim_images[: n - pool], ciphertexts[: n - pool]
    pairs = (victim_images[n - pool :], ciphertexts[n - pool :]) if attack_cls.uses_known_pairs else None
    seen = None
    if attack_cls.uses_victim_ciphertexts:
        seen = victim_ciphertexts
        if pool_images is not None and pool_images.shape[0]:
            pool_ids = torch.arange(n, n + pool_images.shape[0]) if victim_cipher.per_image_key else None
            seen = torch.cat([seen, victim_cipher.encrypt(pool_images, image_ids=pool_ids)])

    def fitted(victim_seen: torch.Tensor | None) -> tuple[Attack, bool]:
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

    restored = instance.restore(victim_ciphertexts)
    scores = ssim(restored, evaluated)
    extra = {name: value for name, value in instance.extra.items() if math.isfinite(value)}
    if attack_cls.restores_positions:
        recovered = positions_recovered(instance, victim_cipher, victim_images.shape[1], family.image_size)
        if math.isfinite(recovered):
            extra["positions_recovered"] = recovered
    entries = key_entries_recovered(getattr(instance, "recovered_cipher", None), victim_cipher)
    if entries is not None:
        extra["key_entries_recovered"] = entries
    curve: list[tuple[int, float]] = []
    if seen is not None:
        extra["ciphertexts_seen"] = float(seen.shape[0])
        if attack_cls.statistical:
            for count in (c for c in ladder if c < seen.shape[0]):
                smaller, _ = fitted(seen[:count])
                curve.append((count, float(ssim(smaller.restore(victim_ciphertexts), evaluated).mean())))
            curve.append((int(seen.shape[0]), float(scores.mean())))
            reached = [count for count, value in curve if value >= RESTORED_SSIM]
            if reached:
                extra["ciphertexts_needed"] = float(reached[0])
    return SecurityResult(
        restored=restored,
        ssim=scores,
        psnr=psnr(restored, evaluated),
        identified=identification(restored, evaluated),
        extra=extra,
        curve=curve,
        note=instance.note,
        cached=cached,
        fit_seconds=fit_seconds,
    )
