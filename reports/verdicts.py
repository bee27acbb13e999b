"""Security verdicts from stored results: an attack restores only what no content-free guess does.

For every (dataset, cipher) cell group the best *baseline* is the content-free guess with the
highest mean SSIM on the same images (the raw ciphertext ``none``, the attacker's mean image,
a flat image of the ciphertext's mean colour).  An attack **restores** when both hold:

1. *structure*: the lower end of the 95% interval of its per-image SSIM minus the best
   baseline's (paired, image by image) exceeds ``verdict_margin``;
2. *identity*: the lower end of the Wilson interval of its top-1 identification rate exceeds
   the upper end of every baseline's.

A threat model's verdict is ✗ when some attack of it restores, ✓ otherwise; a flat or grey
image can never be ✗ (it is a baseline), and a true key recovery always is (SSIM 1, every image
identified).  See docs/benchmark.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.stats import mean_interval

CIPHERTEXT_ONLY = "ciphertext-only"
KNOWN_PLAINTEXT = "known-plaintext"


@dataclass(frozen=True)
class AttackJudgement:
    """One attack of one cell group, judged against the group's best baseline."""

    attack: str
    ssim: float
    baseline: str
    baseline_ssim: float
    gain: float  # mean per-image SSIM minus the best baseline's
    gain_low: float
    gain_high: float
    identification: float
    identification_low: float
    baseline_identification_high: float
    beats_baseline: bool
    identifies: bool

    @property
    def restores(self) -> bool:
        return self.beats_baseline and self.identifies


def attack_info(run: dict[str, Any], attack: str) -> dict[str, Any]:
    return run.get("attacks", {}).get(attack, {"threat_model": CIPHERTEXT_ONLY, "baseline": attack == "none"})


def is_identity(run: dict[str, Any], cipher: str) -> bool:
    return bool(run.get("key_spaces", {}).get(cipher, {}).get("traits", {}).get("identity", False))


def _rows(frame: pd.DataFrame, dataset: str, cipher: str, metric: str) -> pd.DataFrame:
    return frame[(frame["kind"] == "security") & (frame["status"] == "ok") & (frame["dataset"] == dataset)
                 & (frame["cipher"] == cipher) & (frame["metric"] == metric)]


def _per_image(per_image: pd.DataFrame, dataset: str, cipher: str, attack: str, metric: str) -> np.ndarray | None:
    rows = per_image[(per_image["kind"] == "security") & (per_image["dataset"] == dataset) & (per_image["cipher"] == cipher)
                     & (per_image["attack"] == attack) & (per_image["metric"] == metric)]
    return rows.sort_values("image_id")["value"].to_numpy() if len(rows) else None


def judge(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str) -> list[AttackJudgement]:
    """Every non-baseline attack of one (dataset, cipher) group with ok results, judged."""
    margin = float(run["config"].get("verdict_margin", 0.05))
    ssim_rows = _rows(frame, dataset, cipher, "ssim").set_index("attack")
    ident_rows = _rows(frame, dataset, cipher, "identification").set_index("attack")
    baselines = [a for a in ssim_rows.index if attack_info(run, a).get("baseline")]
    if not baselines:
        return []
    best = max(baselines, key=lambda a: ssim_rows.loc[a, "value"])
    baseline_ident_high = max((float(ident_rows.loc[a, "ci95_high"]) for a in baselines if a in ident_rows.index), default=math.nan)
    best_scores = _per_image(per_image, dataset, cipher, best, "ssim")
    judged = []
    for attack in ssim_rows.index:
        if attack in baselines:
            continue
        value = float(ssim_rows.loc[attack, "value"])
        scores = _per_image(per_image, dataset, cipher, attack, "ssim")
        if scores is not None and best_scores is not None and scores.shape == best_scores.shape:
            gain, low, high = mean_interval(scores - best_scores)
        else:  # no per-image table (an older run): unpaired, so the interval is wider
            gain = value - float(ssim_rows.loc[best, "value"])
            low = float(ssim_rows.loc[attack, "ci95_low"]) - float(ssim_rows.loc[best, "ci95_high"])
            high = float(ssim_rows.loc[attack, "ci95_high"]) - float(ssim_rows.loc[best, "ci95_low"])
        if math.isnan(low):  # a single image, or an exact restoration's capped interval
            low = high = gain
        ident = ident_rows.loc[attack] if attack in ident_rows.index else None
        ident_rate = float(ident["value"]) if ident is not None else math.nan
        ident_low = float(ident["ci95_low"]) if ident is not None else math.nan
        identifies = not math.isnan(ident_low) and (math.isnan(baseline_ident_high) or ident_low > baseline_ident_high)
        judged.append(AttackJudgement(
            attack, value, best, float(ssim_rows.loc[best, "value"]), gain, low, high,
            ident_rate, ident_low, baseline_ident_high, low > margin, identifies,
        ))
    return judged


def strongest(judged: list[AttackJudgement], run: dict[str, Any], model: str) -> AttackJudgement | None:
    """The judged attack of a threat model that restores, or else comes closest (largest SSIM gain)."""
    mine = [j for j in judged if attack_info(run, j.attack).get("threat_model", CIPHERTEXT_ONLY) == model]
    if not mine:
        return None
    return max(mine, key=lambda j: (j.restores, j.gain))


def verdict_text(judgement: AttackJudgement | None, applicable: bool) -> str:
    """``✗ (attack restores: ...)`` or ``✓ (best attack ...)`` for the report's tables."""
    if judgement is None:
        return "not measured" if applicable else "n/a (no attack applies)"
    j = judgement
    numbers = f"{j.attack} SSIM {j.ssim:.2f} vs {j.baseline} {j.baseline_ssim:.2f}, id {100 * j.identification:.0f}%"
    return f"✗ ({numbers})" if j.restores else f"✓ ({numbers})"
