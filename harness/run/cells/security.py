"""The security cell: resolve an attack's settings and the cipher family from the configuration,
run the attack (:func:`harness.run.security.run_security_cell`) and shape its scores into rows
with intervals, per-image scores and example restorations."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from attacks.base import AttackConfig, CipherFamily
from harness.keys import derive_seed
from harness.registry import attacks
from harness.run.cells.context import CellContext
from harness.run.cells.output import CellOutput
from harness.run.plan import Cell, cipher_options
from harness.run.security import run_security_cell
from harness.stats import mean_interval, wilson_interval


def security_cell(cell: Cell, ctx: CellContext) -> CellOutput:
    cipher = ctx.victim_cipher(cell.cipher)
    size = ctx.image_size(cell.cipher)
    options = cipher_options(ctx.config, cell.cipher)
    block_size = options.pop("block_size", None)
    family = CipherFamily(name=cell.cipher, image_size=size, block_size=cipher.block_size if block_size is None else block_size, options=options)
    attack_options = dict(ctx.config["attacks"].get(cell.attack) or {})
    attack_options.setdefault("seed", derive_seed(ctx.config["seed"], "attack", cell.attack))
    attack_options["known_pairs"] = ctx.config["known_pairs"]
    base = ctx.row_base(cell)
    reason = attacks.get(cell.attack).applies_to(family)
    if reason:
        return CellOutput([{**base, "status": "n/a", "metric": "ssim", "note": reason}])
    # lazy splits: CIFAR stays at 32 x 32 and is resized a chunk at a time (bounded memory)
    victim = ctx.dataset(cell.dataset, "test", size).lazy()
    attacker = ctx.dataset(cell.dataset, "attacker", size).lazy()
    # the provider holds the encrypted training set too: attacks on victim ciphertexts pool it
    pool = ctx.dataset(cell.dataset, "train", size).lazy() if attacks.get(cell.attack).uses_victim_ciphertexts else None
    count = int(ctx.config["examples"])
    result = run_security_cell(
        cell.attack,
        family,
        cipher,
        victim,
        attacker,
        AttackConfig(**attack_options),
        cache_dir=ctx.cache_dir,
        pool_images=pool,
        ladder=tuple(int(c) for c in ctx.config["ciphertext_ladder"]),
        device=ctx.device,
        refresh_cache=ctx.refresh_cache,
        progress=ctx.cell_progress(cell),
        keep_restored=count,
    )
    ok = {**base, "status": "ok", "note": result.note}
    identified = result.identified.double().cpu().numpy()
    rate, low, high = wilson_interval(float(identified.sum()), identified.size)
    rows = [
        mean_row(ok, "ssim", result.ssim),
        mean_row(ok, "abs_ssim", result.ssim.abs()),
        mean_row(ok, "psnr", result.psnr),
        {**ok, "metric": "identification", "value": rate, "ci95_low": low, "ci95_high": high, "n": identified.size,
         "note": f"top-1 among {identified.size} images (chance {1 / identified.size:.4f}); Wilson interval"},
    ]
    rows += [{**ok, "metric": name, "value": float(value)} for name, value in sorted(result.extra.items())]
    rows += [{**ok, "metric": "ssim_vs_ciphertexts", "value": value, "n": seen, "note": "n = victim ciphertexts the attack saw"}
             for seen, value in result.curve]
    psnr_values = np.minimum(result.psnr.double().cpu().numpy(), PSNR_CAP_DB)
    return CellOutput(
        rows,
        per_image={"ssim": result.ssim.cpu().numpy(), "psnr": psnr_values, "identified": identified},
        examples=[(cell.attack, result.restored[:count].cpu().numpy(), result.ssim[:count].cpu().numpy())],
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
