"""Security verdicts from stored results: ✗ restores, ✓ resists, ? inconclusive.

Scores are symmetry-invariant (``*_invariant`` rows: up to the content-keeping transform that
fits the restorations best, :mod:`harness.symmetry`); runs made before those rows existed fall
back to raw scores.  For every (dataset, cipher) cell group the best *baseline* is the
content-free guess with the highest mean SSIM on the same images (the raw ciphertext ``none``,
the attacker's mean image, a flat image of the ciphertext's mean colour).  Per attack:

- **✗ restores** when it recovered the key exactly (every key entry, or SSIM 1.000 on every
  image), at any number of images; or when both hold: *structure*, the lower end of the paired
  95% interval of its per-image SSIM minus the best baseline's exceeds ``verdict_margin``, and
  *identity*, the lower end of the Wilson interval of its top-1 identification rate exceeds the
  upper end of every baseline's.
- **✓ resists** only when the evidence excludes a restoration: at least
  :data:`MIN_IMAGES_RESISTS` images, the *upper* end of the SSIM gain's interval below the margin,
  and the upper end of its identification interval below :data:`IDENTIFICATION_LEAK` or the
  baselines' upper end, whichever is higher.
- **? inconclusive** otherwise, with the reason (too few images, an interval reaching the margin,
  images identified without a structural gain...).

A threat model's verdict is ✗ when some attack of it restores, ✓ when every attack of it that
ran resists, ? otherwise.  See docs/benchmark.md ("The security verdict").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.stats import Z95, mean_interval

CIPHERTEXT_ONLY = "ciphertext-only"
KNOWN_PLAINTEXT = "known-plaintext"
#: the attacker holds the provider's trained or key-transformed model (``weights_*`` attacks)
MODEL_HOLDER = "model-holder"
#: the threat models the report gives a verdict column each, in order
THREAT_MODELS = (CIPHERTEXT_ONLY, KNOWN_PLAINTEXT, MODEL_HOLDER)
RESTORES, RESISTS, INCONCLUSIVE = "✗", "✓", "?"
WORDS = {RESTORES: "restores", RESISTS: "resists", INCONCLUSIVE: "inconclusive"}
#: ✓ needs the identification rate's upper bound below this (or below the baselines' upper bound)
IDENTIFICATION_LEAK = 0.10
#: the fewest images with which ✓ is possible: the Wilson upper bound of 0 identified out of n is
#: z^2 / (n + z^2), below IDENTIFICATION_LEAK only from n = 35 on
MIN_IMAGES_RESISTS = math.ceil(Z95**2 * (1 - IDENTIFICATION_LEAK) / IDENTIFICATION_LEAK)
#: per-image SSIM at or above this is an exact restoration (1.000 at three decimals)
EXACT_SSIM = 0.9995


@dataclass(frozen=True)
class AttackJudgement:
    """One attack of one cell group, judged against the group's best baseline (invariant scores)."""

    attack: str
    ssim: float
    raw_ssim: float
    transform: str
    baseline: str
    baseline_ssim: float
    gain: float  # mean per-image SSIM minus the best baseline's
    gain_low: float
    gain_high: float
    identification: float
    identification_low: float
    identification_high: float
    baseline_identification_high: float
    n: int
    exact: bool
    margin: float

    @property
    def beats_baseline(self) -> bool:
        return self.gain_low > self.margin

    @property
    def identifies(self) -> bool:
        return not math.isnan(self.identification_low) and (
            math.isnan(self.baseline_identification_high) or self.identification_low > self.baseline_identification_high)

    @property
    def restores(self) -> bool:
        return self.exact or (self.beats_baseline and self.identifies)

    @property
    def verdict(self) -> str:
        if self.restores:
            return RESTORES
        return RESISTS if not self.open_questions else INCONCLUSIVE

    @property
    def open_questions(self) -> list[str]:
        """Why a non-restoring attack is not ✓ (empty when it resists)."""
        reasons = []
        if self.n < MIN_IMAGES_RESISTS:
            reasons.append(f"n = {self.n} images: too few (✓ needs ≥ {MIN_IMAGES_RESISTS})")
        if not self.gain_high < self.margin:
            reasons.append(f"SSIM gain's interval reaches {self.gain_high:+.3f} (margin {self.margin:g})")
        leak = max(IDENTIFICATION_LEAK, 0.0 if math.isnan(self.baseline_identification_high) else self.baseline_identification_high)
        if not self.identification_high < leak:
            reasons.append(f"identification up to {100 * self.identification_high:.0f}% (✓ needs < {100 * leak:.0f}%)")
        return reasons

    @property
    def reason(self) -> str:
        if self.exact:
            return "exact restoration"
        if self.restores:
            return "beats every baseline and identifies the images"
        return "; ".join(self.open_questions) or "excluded at 95%"


@dataclass(frozen=True)
class ModelVerdict:
    """One threat model's verdict for one cipher: the deciding attack and what was tried."""

    symbol: str
    deciding: AttackJudgement
    reason: str
    coverage: list[str]
    key_recovery_ran: bool

    @property
    def text(self) -> str:
        return f"{self.symbol} {WORDS[self.symbol]}"


def attack_info(run: dict[str, Any], attack: str) -> dict[str, Any]:
    return run.get("attacks", {}).get(attack, {"threat_model": CIPHERTEXT_ONLY, "baseline": attack == "none"})


def is_identity(run: dict[str, Any], cipher: str) -> bool:
    return bool(run.get("key_spaces", {}).get(cipher, {}).get("traits", {}).get("identity", False))


def _security(frame: pd.DataFrame, dataset: str, cipher: str) -> pd.DataFrame:
    return frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher)]


def _rows(frame: pd.DataFrame, dataset: str, cipher: str, metric: str) -> pd.DataFrame:
    rows = _security(frame, dataset, cipher)
    return rows[(rows["status"] == "ok") & (rows["metric"] == metric)]


def _per_image(per_image: pd.DataFrame, dataset: str, cipher: str, attack: str, metric: str) -> np.ndarray | None:
    rows = per_image[(per_image["kind"] == "security") & (per_image["dataset"] == dataset) & (per_image["cipher"] == cipher)
                     & (per_image["attack"] == attack) & (per_image["metric"] == metric)]
    return rows.sort_values("image_id")["value"].to_numpy() if len(rows) else None


def _metric_names(frame: pd.DataFrame) -> tuple[str, str, str]:
    """(ssim, identification, per-image ssim) metric names: invariant where the run has them."""
    invariant = bool((frame["metric"] == "ssim_invariant").any())
    return ("ssim_invariant", "identification_invariant", "ssim_invariant") if invariant else ("ssim", "identification", "ssim")


def _gain(frame, per_image, dataset, cipher, attack, best, metrics) -> tuple[float, float, float, np.ndarray | None]:
    ssim_metric, _, image_metric = metrics
    scores = _per_image(per_image, dataset, cipher, attack, image_metric)
    best_scores = _per_image(per_image, dataset, cipher, best, image_metric)
    if scores is not None and best_scores is not None and scores.shape == best_scores.shape:
        gain, low, high = mean_interval(scores - best_scores)
    else:  # no per-image table (an older run): unpaired, so the interval is wider
        ssim_rows = _rows(frame, dataset, cipher, ssim_metric).set_index("attack")
        gain = float(ssim_rows.loc[attack, "value"]) - float(ssim_rows.loc[best, "value"])
        low = float(ssim_rows.loc[attack, "ci95_low"]) - float(ssim_rows.loc[best, "ci95_high"])
        high = float(ssim_rows.loc[attack, "ci95_high"]) - float(ssim_rows.loc[best, "ci95_low"])
    if math.isnan(low):  # a single image, or an exact restoration's capped interval
        low = high = gain
    return gain, low, high, scores


def judge(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str) -> list[AttackJudgement]:
    """Every non-baseline attack of one (dataset, cipher) group with ok results, judged."""
    margin = float(run["config"].get("verdict_margin", 0.05))
    metrics = _metric_names(frame)
    mine = _security(frame, dataset, cipher)  # this cipher's rows, filtered once
    ssim_rows = _rows(mine, dataset, cipher, metrics[0]).set_index("attack")
    ident_rows = _rows(mine, dataset, cipher, metrics[1]).set_index("attack")
    raw_rows = _rows(mine, dataset, cipher, "ssim").set_index("attack")
    symmetry_rows = _rows(mine, dataset, cipher, "symmetry").set_index("attack")
    keys = _rows(mine, dataset, cipher, "key_entries_recovered").set_index("attack")
    baselines = [a for a in ssim_rows.index if attack_info(run, a).get("baseline")]
    if not baselines:
        return []
    images = _security(per_image, dataset, cipher)  # this cipher's per-image rows, filtered once
    best = max(baselines, key=lambda a: ssim_rows.loc[a, "value"])
    baseline_ident_high = max((float(ident_rows.loc[a, "ci95_high"]) for a in baselines if a in ident_rows.index), default=math.nan)
    judged = []
    for attack in ssim_rows.index:
        if attack in baselines:
            continue
        value = float(ssim_rows.loc[attack, "value"])
        gain, low, high, scores = _gain(frame, images, dataset, cipher, attack, best, metrics)
        ident = ident_rows.loc[attack] if attack in ident_rows.index else None
        n = int(ssim_rows.loc[attack, "n"]) if not pd.isna(ssim_rows.loc[attack, "n"]) else 0
        every_image_exact = bool((scores >= EXACT_SSIM).all()) if scores is not None else value >= EXACT_SSIM
        exact = every_image_exact or (attack in keys.index and float(keys.loc[attack, "value"]) == 1.0)
        judged.append(AttackJudgement(
            attack, value, float(raw_rows.loc[attack, "value"]) if attack in raw_rows.index else value,
            str(symmetry_rows.loc[attack, "note"]).split(": ")[-1] if attack in symmetry_rows.index else "upright",
            best, float(ssim_rows.loc[best, "value"]), gain, low, high,
            float(ident["value"]) if ident is not None else math.nan,
            float(ident["ci95_low"]) if ident is not None else math.nan,
            float(ident["ci95_high"]) if ident is not None else math.nan,
            baseline_ident_high, n, exact, margin,
        ))
    return judged


def _model(run: dict[str, Any], attack: str) -> str:
    return attack_info(run, attack).get("threat_model", CIPHERTEXT_ONLY)


def strongest(judged: list[AttackJudgement], run: dict[str, Any], model: str) -> AttackJudgement | None:
    """The attack that decides a threat model's verdict: a restoring one, else an inconclusive one,
    else a resisting one; the largest SSIM gain among those."""
    mine = [j for j in judged if _model(run, j.attack) == model]
    if not mine:
        return None
    rank = {RESTORES: 2, INCONCLUSIVE: 1, RESISTS: 0}
    return max(mine, key=lambda j: (rank[j.verdict], j.gain))


def budget(frame: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, attack: str) -> str:
    """What an attack was given, from its rows and settings (ciphertexts, pairs, steps, epochs)."""
    rows = _rows(frame, dataset, cipher, "ciphertexts_seen")
    parts = []
    seen = rows[rows["attack"] == attack]["value"]
    if len(seen):
        parts.append(f"{int(seen.iloc[0])} ciphertexts")
    pairs = _rows(frame, dataset, cipher, "pairs_given")
    given = pairs[pairs["attack"] == attack]["value"]
    if len(given):
        parts.append(f"{int(given.iloc[0])} known pairs")
    steps = _rows(frame, dataset, cipher, "steps")
    taken = steps[steps["attack"] == attack]["value"]
    settings = run["config"].get("attacks", {}).get(attack) or {}
    if len(taken):
        parts.append(f"{int(taken.iloc[0])} steps")
    elif attack_info(run, attack).get("learned") or "epochs" in settings:
        parts.append(f"{settings.get('epochs', '?')} epochs")
    return f"{attack} ({', '.join(parts)})" if parts else attack


def model_verdict(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str,
                  reading: str | None = None) -> ModelVerdict | None:
    """The verdict of one threat model for one cipher, with the attacks that ran and their budgets;
    ``reading``: only the model-holder attacks that read that model (``keyed``, ``trained``)."""
    judged = [j for j in judge(frame, per_image, run, dataset, cipher) if _model(run, j.attack) == model
              and (reading is None or reading in attack_info(run, j.attack).get("reads_models", [reading]))]
    deciding = strongest(judged, run, model)
    if deciding is None:
        return None
    restoring = [j for j in judged if j.verdict == RESTORES]
    open_ = [j for j in judged if j.verdict == INCONCLUSIVE]
    symbol = RESTORES if restoring else INCONCLUSIVE if open_ else RESISTS
    if symbol == INCONCLUSIVE:
        reason = "; ".join(f"{j.attack}: {j.reason}" for j in open_)
    else:
        reason = f"{deciding.attack}: {deciding.reason}"
    coverage = [budget(frame, run, dataset, cipher, j.attack) for j in judged]
    key_recovery = any(attack_info(run, j.attack).get("key_recovery") for j in judged)
    return ModelVerdict(symbol, deciding, reason, coverage, key_recovery)


def verdict_text(verdict: ModelVerdict | None, applicable: bool, model: str = "") -> str:
    """``✗ (attack restores: ...)``, ``✓ (...)`` or ``? (... : reason)`` for the report's tables;
    ``n/a (no <model> attack applies)`` where no attack of threat model ``model`` ran."""
    if verdict is None:
        return "not measured" if applicable else f"n/a (no {model + ' ' if model else ''}attack applies)"
    j = verdict.deciding
    numbers = f"{j.attack} SSIM {j.ssim:.2f} vs {j.baseline} {j.baseline_ssim:.2f}, id {100 * j.identification:.0f}%"
    if verdict.symbol == INCONCLUSIVE:
        return f"? ({numbers}; {verdict.reason})"
    return f"{verdict.symbol} ({numbers})"
