"""PNG figures rendered from a run folder's stored example images and results rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

from harness.results import ResultStore
from reports.tables import NONE_ATTACK, ordered_ciphers
from reports.verdicts import CIPHERTEXT_ONLY, RESTORES, attack_info, is_identity, model_verdict


def _to_hwc(image: np.ndarray) -> np.ndarray:
    """CHW uint8 -> HWC for imshow (grayscale ciphertexts stay 2-D)."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def _invariant_label(frame: pd.DataFrame, per_image: pd.DataFrame, dataset: str, cipher: str, attack: str, index: int) -> str:
    """``"\n1.00 if mirrored"`` under a restoration whose chosen transform is not the identity."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher)
                 & (frame["attack"] == attack) & (frame["metric"] == "symmetry") & (frame["status"] == "ok")]
    if rows.empty or float(rows["value"].iloc[0]) == 0.0:
        return ""
    scores = per_image[(per_image["kind"] == "security") & (per_image["dataset"] == dataset) & (per_image["cipher"] == cipher)
                       & (per_image["attack"] == attack) & (per_image["metric"] == "ssim_invariant") & (per_image["image_id"] == index)]
    if scores.empty:
        return ""
    transform = str(rows["note"].iloc[0]).split(": ")[-1]
    return f"\n{float(scores['value'].iloc[0]):.2f} if {transform}"


def examples_figure(store: ResultStore, frame: pd.DataFrame, per_image: pd.DataFrame, dataset: str, path: Path, index: int = 0) -> Path | None:
    """The seed's Fig. 4 layout: per cipher, plain, encrypted and each attack's restoration, with
    its raw SSIM and, where the restoration is a transformed copy, the SSIM undoing that transform."""
    ciphers = ordered_ciphers(list(frame[(frame["kind"] == "key_space") & (frame["dataset"] == dataset)]["cipher"].unique()))
    attacks = sorted(a for a in frame[frame["kind"] == "security"]["attack"].unique() if a and a != NONE_ATTACK)
    columns = ["plain", "encrypted", *attacks]
    if not ciphers:
        return None
    fig = Figure(figsize=(1.7 * len(columns), 1.9 * len(ciphers)))
    axes = fig.subplots(len(ciphers), len(columns), squeeze=False)
    for r, cipher in enumerate(ciphers):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            example = store.example_path(dataset, cipher, column)
            if r == 0:
                ax.set_title(column, fontsize=9)
            if c == 0:
                ax.set_ylabel(cipher, fontsize=9)
            if not example.exists():
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            images, scores = store.load_examples(example)
            if index >= len(images):
                continue
            ax.imshow(_to_hwc(images[index]), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            if len(scores) > index:
                extra = _invariant_label(frame, per_image, dataset, cipher, column, index) if c >= 2 else ""
                ax.set_xlabel(f"SSIM {scores[index]:.2f}{extra}", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def ssim_boxplots(per_image: pd.DataFrame, run: dict[str, Any], dataset: str, path: Path) -> Path | None:
    """Per cipher, the distribution of per-image SSIM of every attack (the attack authors' figure),
    baselines shaded, drawn from the per-image table only."""
    rows = per_image[(per_image["kind"] == "security") & (per_image["dataset"] == dataset) & (per_image["metric"] == "ssim")]
    ciphers = [c for c in ordered_ciphers(list(rows["cipher"].unique())) if not is_identity(run, c)]
    if not ciphers:
        return None
    fig = Figure(figsize=(7, 1.9 * len(ciphers)))
    axes = fig.subplots(len(ciphers), 1, squeeze=False)
    for ax, cipher in zip(axes[:, 0], ciphers):
        mine = rows[rows["cipher"] == cipher]
        names = sorted(mine["attack"].unique(), key=lambda a: (not attack_info(run, a).get("baseline"), a))
        data = [mine[mine["attack"] == a]["value"].to_numpy() for a in names]
        parts = ax.boxplot(data, orientation="horizontal", widths=0.6, patch_artist=True, showfliers=False)
        for patch, name in zip(parts["boxes"], names):
            patch.set_facecolor("0.85" if attack_info(run, name).get("baseline") else "tab:orange")
        ax.set_yticks(range(1, len(names) + 1), names, fontsize=7)
        ax.set_xlim(-0.3, 1.02)
        ax.set_title(cipher, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("per-image SSIM (grey: content-free baselines)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def ciphertext_curve_figure(frame: pd.DataFrame, dataset: str, path: Path) -> Path | None:
    """Statistical attacks: mean SSIM against the number of victim ciphertexts they saw (log scale)."""
    rows = frame[(frame["kind"] == "security") & (frame["status"] == "ok") & (frame["metric"] == "ssim_vs_ciphertexts")
                 & (frame["dataset"] == dataset)]
    if rows.empty:
        return None
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for (cipher, attack), curve in rows.groupby(["cipher", "attack"], sort=True):
        curve = curve.sort_values("n")
        ax.plot(curve["n"].astype(float), curve["value"], marker="o", label=f"{attack} on {cipher}")
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("victim ciphertexts the attacker holds (one key)")
    ax.set_ylabel("mean SSIM of the restorations")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def tradeoff_figure(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, path: Path) -> Path | None:
    """Accuracy (95% interval) of each cipher's best network against its strongest ciphertext-only
    attack's SSIM gain over the best content-free baseline (95% interval)."""
    acc = frame[(frame["kind"] == "accuracy") & (frame["status"] == "ok") & (frame["metric"] == "accuracy") & (frame["dataset"] == dataset)]
    points, reference = [], None
    for cipher in ordered_ciphers(list(acc["cipher"].unique())):
        cell = acc[acc["cipher"] == cipher].sort_values("value").iloc[-1]
        if is_identity(run, cipher):  # no key, nothing to attack: the accuracy to compare with
            reference = cell
            continue
        verdict = model_verdict(frame, per_image, run, dataset, cipher, CIPHERTEXT_ONLY)
        if verdict is not None:
            points.append((cipher, cell, verdict))
    if not points:
        return None
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    if reference is not None:
        ax.axhline(100 * reference["value"], color="grey", linestyle=":", linewidth=1,
                   label=f"{reference['cipher']} ({reference['classifier']})")
    for cipher, cell, verdict in points:
        best = verdict.deciding
        low, high = 100 * cell["ci95_low"], 100 * cell["ci95_high"]
        accuracy = 100 * cell["value"]
        yerr = None if np.isnan(low) else [[accuracy - low], [high - accuracy]]
        xerr = [[best.gain - best.gain_low], [best.gain_high - best.gain]]
        ax.errorbar(best.gain, accuracy, xerr=xerr, yerr=yerr, fmt={RESTORES: "x", "?": "s"}.get(verdict.symbol, "o"), capsize=2)
        ax.annotate(f"{cipher} ({cell['classifier']}, {best.attack})", (best.gain, accuracy), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.axvline(float(run["config"].get("verdict_margin", 0.05)), color="grey", linestyle="--", linewidth=1, label="verdict margin")
    ax.set_xlabel("deciding ciphertext-only attack: symmetry-invariant SSIM gain over the best baseline")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Privacy vs accuracy ({dataset}); x = restores, o = resists, square = inconclusive", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
