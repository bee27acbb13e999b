"""The report's tables as plain data, computed only from results rows and run metadata."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

#: the seed's Table I row order; other ciphers follow alphabetically
CIPHER_ORDER = ("le", "etc", "etc_gray", "ele", "pe", "proposed", "plain")
NONE_ATTACK = "none"
CIPHERTEXT_ONLY = "ciphertext-only"


def ordered_ciphers(names: list[str]) -> list[str]:
    known = [c for c in CIPHER_ORDER if c in names]
    return known + sorted(set(names) - set(known))


def _ok(frame: pd.DataFrame, kind: str, metric: str) -> pd.DataFrame:
    return frame[(frame["kind"] == kind) & (frame["metric"] == metric) & (frame["status"] == "ok")]


def threat_model(run: dict[str, Any], attack: str) -> str:
    return run.get("attack_threat_models", {}).get(attack, CIPHERTEXT_ONLY)


def best_attacks(frame: pd.DataFrame, run: dict[str, Any], model: str) -> dict[tuple[str, str], tuple[str, float]]:
    """(dataset, cipher) -> (attack, mean SSIM) of the strongest attack of one threat model."""
    rows = frame[(frame["kind"] == "security") & (frame["metric"] == "ssim") & (frame["status"] != "failed")]
    rows = rows[(rows["attack"] != NONE_ATTACK) & rows["attack"].map(lambda a: threat_model(run, a) == model)]
    best: dict[tuple[str, str], tuple[str, float]] = {}
    for row in rows[rows["status"] == "n/a"].itertuples():
        best.setdefault((row.dataset, row.cipher), (row.attack, float("nan")))
    rows = rows[rows["status"] == "ok"]
    for row in rows.itertuples():
        key = (row.dataset, row.cipher)
        if key not in best or math.isnan(best[key][1]) or row.value > best[key][1]:
            best[key] = (row.attack, float(row.value))
    return best


def verdict(cipher: str, best: tuple[str, float] | None, threshold: float) -> str:
    """✓ when the strongest attack's mean SSIM stays below the threshold, ✗ otherwise."""
    if cipher == "plain":
        return "–"
    if best is None:
        return "not measured"
    attack, value = best
    if math.isnan(value):
        return f"n/a ({attack} does not apply)"
    mark = "✗" if value >= threshold else "✓"
    relation = "≥" if value >= threshold else "<"
    return f"{mark} ({attack} {value:.2f} {relation} {threshold:.2f})"


def accuracy_table(frame: pd.DataFrame, run: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The seed's Table I: cipher, network, accuracy per dataset, security verdicts."""
    datasets = run["config"]["datasets"]
    threshold = float(run["config"]["verdict_threshold"])
    acc = _ok(frame, "accuracy", "accuracy")
    failed = frame[(frame["kind"] == "accuracy") & (frame["status"] == "failed")]
    coa = best_attacks(frame, run, CIPHERTEXT_ONLY)
    kpa = best_attacks(frame, run, "known-plaintext")
    cells = pd.concat([acc, failed])[["cipher", "classifier"]].drop_duplicates()
    headers = ["encryption", "network", *[f"{d} accuracy (%)" for d in datasets], "ciphertext-only attacks", "known-plaintext attack"]
    body = []
    for cipher in ordered_ciphers(list(cells["cipher"].unique())):
        for classifier in sorted(cells[cells["cipher"] == cipher]["classifier"]):
            line = [cipher, classifier]
            for dataset in datasets:
                hit = acc[(acc["cipher"] == cipher) & (acc["classifier"] == classifier) & (acc["dataset"] == dataset)]
                fail = failed[(failed["cipher"] == cipher) & (failed["classifier"] == classifier) & (failed["dataset"] == dataset)]
                line.append(f"{100 * hit['value'].iloc[0]:.2f}" if len(hit) else "failed" if len(fail) else "–")
            line.append("; ".join(verdict(cipher, coa.get((d, cipher)), threshold) for d in datasets))
            line.append("; ".join(verdict(cipher, kpa.get((d, cipher)), threshold) for d in datasets))
            body.append(line)
    return headers, body


def security_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """Cipher x attack: mean SSIM [95% interval]; attack ``none`` is the raw ciphertext."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset)]
    attack_names = sorted(rows["attack"].unique(), key=lambda a: (a != NONE_ATTACK, a))
    headers = ["encryption", *[f"{a} (raw ciphertext)" if a == NONE_ATTACK else a for a in attack_names]]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        line = [cipher]
        for attack in attack_names:
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            ssim_row = cell[cell["metric"] == "ssim"]
            if cell.empty:
                line.append("–")
            elif (cell["status"] == "failed").any():
                line.append("failed")
            elif (ssim_row["status"] == "n/a").any():
                line.append("n/a")
            else:
                row = ssim_row.iloc[0]
                interval = "" if math.isnan(row["ci95_low"]) else f" [{row['ci95_low']:.3f}, {row['ci95_high']:.3f}]"
                line.append(f"{row['value']:.3f}{interval}")
        body.append(line)
    return headers, body


def extra_metrics_table(frame: pd.DataFrame, dataset: str) -> tuple[list[str], list[list[str]]]:
    """One line per security cell: its attack-specific numbers (e.g. pairs needed) and its note."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["status"] != "failed")]
    body = []
    for cipher in ordered_ciphers(list(rows["cipher"].unique())):
        for attack in sorted(rows[rows["cipher"] == cipher]["attack"].unique()):
            cell = rows[(rows["cipher"] == cipher) & (rows["attack"] == attack)]
            extra = cell[~cell["metric"].isin(["ssim", "psnr"])]
            numbers = ", ".join(f"{r.metric}={r.value:.4g}" for r in extra.itertuples())
            note = next((n for n in cell["note"] if n), "")
            if numbers or note:
                body.append([cipher, attack, numbers, note])
    return ["encryption", "attack", "attack-specific numbers", "note"], body


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
