"""The report's tables as plain data, computed only from results rows and run metadata."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from reports.verdicts import (
    CIPHERTEXT_ONLY,
    KNOWN_PLAINTEXT,
    RESTORES,
    ModelVerdict,
    attack_info,
    is_identity,
    model_verdict,
    verdict_text,
)

#: the seed's Table I row order (presentation only: no decision depends on it); others follow alphabetically
CIPHER_ORDER = ("le", "etc", "etc_gray", "ele", "pe", "proposed", "plain")
NONE_ATTACK = "none"


def ordered_ciphers(names: list[str]) -> list[str]:
    known = [c for c in CIPHER_ORDER if c in names]
    return known + sorted(set(names) - set(known))


def _ok(frame: pd.DataFrame, kind: str, metric: str) -> pd.DataFrame:
    return frame[(frame["kind"] == kind) & (frame["metric"] == metric) & (frame["status"] == "ok")]


def _interval(row: Any, scale: float = 1.0, digits: int = 3) -> str:
    if math.isnan(row["ci95_low"]):
        return ""
    return f" [{scale * row['ci95_low']:.{digits}f}, {scale * row['ci95_high']:.{digits}f}]"


def _applicable(frame: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str) -> bool:
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher)]
    return any(
        attack_info(run, a).get("threat_model", CIPHERTEXT_ONLY) == model and not attack_info(run, a).get("baseline")
        for a in rows[rows["status"] != "n/a"]["attack"].unique()
    )


def security_verdict(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str, model: str) -> str:
    """The report's ✗/✓/? for one cipher and threat model (reports/verdicts.py has the rule)."""
    if is_identity(run, cipher):
        return "–"
    verdict = model_verdict(frame, per_image, run, dataset, cipher, model)
    return verdict_text(verdict, _applicable(frame, run, dataset, cipher, model))


def accuracy_table(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The seed's Table I: cipher, network, accuracy [95% interval] per dataset, security verdicts."""
    datasets = run["config"]["datasets"]
    acc = _ok(frame, "accuracy", "accuracy")
    failed = frame[(frame["kind"] == "accuracy") & (frame["status"] == "failed")]
    cells = pd.concat([acc, failed])[["cipher", "classifier"]].drop_duplicates()
    headers = ["encryption", "network", *[f"{d} accuracy (%)" for d in datasets], "ciphertext-only attacks", "known-plaintext attack"]
    body = []
    for cipher in ordered_ciphers(list(cells["cipher"].unique())):
        for classifier in sorted(cells[cells["cipher"] == cipher]["classifier"]):
            line = [cipher, classifier]
            for dataset in datasets:
                hit = acc[(acc["cipher"] == cipher) & (acc["classifier"] == classifier) & (acc["dataset"] == dataset)]
                fail = failed[(failed["cipher"] == cipher) & (failed["classifier"] == classifier) & (failed["dataset"] == dataset)]
                text = f"{100 * hit['value'].iloc[0]:.1f}{_interval(hit.iloc[0], 100, 1)}" if len(hit) else "failed" if len(fail) else "–"
                line.append(text)
            for model in (CIPHERTEXT_ONLY, KNOWN_PLAINTEXT):
                line.append("; ".join(security_verdict(frame, per_image, run, d, cipher, model) for d in datasets))
            body.append(line)
    return headers, body


def coverage_text(verdict: ModelVerdict) -> str:
    """Beside a ✓ or ?: which attacks ran at what budget, and whether any could recover the key."""
    if verdict.symbol == RESTORES:
        return verdict.reason
    text = f"{verdict.reason}. Attacks run: {', '.join(verdict.coverage)}"
    if not verdict.key_recovery_ran:
        text += "; no key-recovery attack applies to this cipher's traits"
    return text


def verdict_table(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str) -> tuple[list[str], list[list[str]]]:
    """Per cipher and threat model: the deciding attack against the best content-free baseline,
    symmetry-invariant scores beside the raw SSIM, the verdict and why."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset)]
    headers = ["encryption", "threat model", "deciding attack", "SSIM (invariant)", "raw SSIM", "transform", "best baseline (SSIM)",
               "SSIM gain [95%]", "identified (%) [95%]", "baselines identify ≤ (%)", "verdict", "why; coverage"]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        if is_identity(run, cipher):
            continue
        for model in (CIPHERTEXT_ONLY, KNOWN_PLAINTEXT):
            verdict = model_verdict(frame, per_image, run, dataset, cipher, model)
            if verdict is None:
                continue
            j = verdict.deciding
            body.append([
                cipher, model, j.attack, f"{j.ssim:.3f}", f"{j.raw_ssim:.3f}", j.transform, f"{j.baseline} ({j.baseline_ssim:.3f})",
                f"{j.gain:+.3f} [{j.gain_low:+.3f}, {j.gain_high:+.3f}]",
                f"{100 * j.identification:.1f} [{100 * j.identification_low:.1f}, {100 * j.identification_high:.1f}]",
                f"{100 * j.baseline_identification_high:.1f}", verdict.text, coverage_text(verdict),
            ])
    return headers, body


def security_table(
    frame: pd.DataFrame, run: dict[str, Any], dataset: str, metric: str = "ssim", scale: float = 1.0, digits: int = 3
) -> tuple[list[str], list[list[str]]]:
    """Cipher x attack: mean of ``metric`` [95% interval]; baselines first, ``none`` (the raw ciphertext) leading."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset)]
    attack_names = sorted(rows["attack"].unique(), key=lambda a: (a != NONE_ATTACK, not attack_info(run, a).get("baseline"), a))
    headers = ["encryption", *[f"{a} (raw ciphertext)" if a == NONE_ATTACK else a for a in attack_names]]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        line = [cipher]
        for attack in attack_names:
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            ssim_row = cell[cell["metric"] == metric]
            if cell.empty:
                line.append("–")
            elif (cell["status"] == "failed").any():
                line.append("failed")
            elif (cell["status"] == "n/a").any():
                line.append("n/a")
            elif ssim_row.empty:
                line.append("–")
            else:
                row = ssim_row.iloc[0]
                line.append(f"{scale * row['value']:.{digits}f}{_interval(row, scale, digits)}")
        body.append(line)
    return headers, body


def extra_metrics_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """One line per security cell: its attack-specific numbers (e.g. pairs needed) and its note."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["status"] != "failed")]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        for attack in sorted(rows[rows["cipher"] == cipher]["attack"].unique()):
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            extra = cell[~cell["metric"].isin(SCORE_METRICS)]
            numbers = ", ".join(f"{r.metric}={r.value:.4g}" for r in extra.itertuples())
            note = next((n for n in cell["note"] if n), "")
            if numbers or note:
                body.append([cipher, attack, numbers, note])
    return ["encryption", "attack", "attack-specific numbers", "note"], body


#: per-cell scores with tables of their own (everything else is an attack-specific number)
SCORE_METRICS = ("ssim", "abs_ssim", "psnr", "identification", "ssim_vs_ciphertexts", "ssim_invariant", "psnr_invariant",
                 "identification_invariant", "symmetry")


def curve_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Statistical attacks: mean SSIM against the number of victim ciphertexts they saw."""
    rows = _ok(frame, "security", "ssim_vs_ciphertexts")
    rows = rows[rows["dataset"] == dataset]
    counts = sorted({int(n) for n in rows["n"]})
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        for attack in sorted(rows[rows["cipher"] == cipher]["attack"].unique()):
            curve = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            values = {int(r.n): r.value for r in curve.itertuples()}
            body.append([cipher, attack, *[f"{values[c]:.3f}" if c in values else "" for c in counts]])
    return ["encryption", "attack", *[str(c) for c in counts]], body


def key_space_table(frame: pd.DataFrame, run: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = frame[(frame["kind"] == "key_space") & (frame["status"] == "ok")]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        cell = rows[rows["cipher"] == cipher]
        value = dict(zip(cell["metric"], cell["value"]))
        info = run.get("key_spaces", {}).get(cipher, {})
        size = "x".join(map(str, info.get("image_size", []))) or "–"
        nominal, effective = value.get("key_space_log2", math.nan), value.get("effective_key_space_log2", math.nan)
        body.append([cipher, size, f"{value.get('block_size', math.nan):.0f}", cell["key_condition"].iloc[0], f"{nominal:.2f}", f"{effective:.2f}", f"2^{math.ceil(nominal - 1e-9):d}" if nominal > 0 else "1"])
    return ["encryption", "image size", "block size", "key condition", "log2 key space (nominal)", "log2 (effective)", "rounded up"], body


def failures_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    failed = frame[frame["status"] == "failed"]
    body = [[r.kind, r.dataset, r.cipher, r.classifier or r.attack, r.note] for r in failed.itertuples()]
    return ["kind", "dataset", "encryption", "network / attack", "error"], body
