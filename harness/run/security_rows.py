"""A security cell's result rows, per-image scores and example restorations (what its record stores)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.run.security import SecurityResult
from harness.stats import mean_interval, wilson_interval


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
