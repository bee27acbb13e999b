"""PNG figures rendered from a run folder's stored example images and results rows."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

from harness.results import ResultStore
from reports.tables import NONE_ATTACK, PLAIN, accuracy_cost, ordered_ciphers, plain_base
from reports.verdicts import CIPHERTEXT_ONLY, KNOWN_PLAINTEXT, MODEL_HOLDER, RESTORES, attack_info, is_identity, model_verdict


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
    transform = textwrap.fill(str(rows["note"].iloc[0]).split(": ")[-1], 22)
    return f"\n{float(scores['value'].iloc[0]):.2f} if {transform}"


#: example images per cipher in the seed's Fig. 4 layout (distinct ones, among the stored examples)
EXAMPLE_IMAGES = 4
#: markers and line styles that stay distinct in print (cycled together)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
KNOWLEDGE = {CIPHERTEXT_ONLY: "ciphertext-only", KNOWN_PLAINTEXT: "known-plaintext", MODEL_HOLDER: "model holder"}


def distinct_examples(images: np.ndarray, count: int = EXAMPLE_IMAGES) -> list[int]:
    """Indices of up to ``count`` distinct images, greedily the farthest from those already picked
    (the stored examples are the first evaluated images, which may repeat a photograph)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    picked = [0] if len(flat) else []
    while len(picked) < min(count, len(flat)):
        distance = np.min([np.abs(flat - flat[i]).mean(1) for i in picked], axis=0)
        best = int(np.argmax(distance))
        if distance[best] == 0.0:  # only repeats left
            break
        picked.append(best)
    return picked


def _attack_columns(store: ResultStore, frame: pd.DataFrame, run: dict[str, Any], dataset: str, cipher: str) -> list[str]:
    """Attacks that ran on ``cipher`` and stored examples (n/a ones left out), baselines first."""
    rows = frame[(frame["kind"] == "security") & (frame["dataset"] == dataset) & (frame["cipher"] == cipher) & (frame["status"] == "ok")]
    names = [a for a in rows["attack"].unique() if a and store.example_path(dataset, cipher, a).exists()]
    return sorted(names, key=lambda a: (not attack_info(run, a).get("baseline"), a != NONE_ATTACK,
                                        attack_info(run, a).get("threat_model", CIPHERTEXT_ONLY), a))


def _column_title(run: dict[str, Any], column: str) -> str:
    if column in ("plain", "encrypted"):
        return column
    info = attack_info(run, column)
    if info.get("baseline"):
        return f"{column}\n(baseline)" if column != NONE_ATTACK else "none\n(raw ciphertext)"
    return f"{column}\n({KNOWLEDGE.get(info.get('threat_model', CIPHERTEXT_ONLY), info.get('threat_model'))})"


def examples_figure(store: ResultStore, frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str,
                    cipher: str, path: Path) -> Path | None:
    """The seed's Fig. 4 for one cipher: up to :data:`EXAMPLE_IMAGES` distinct images (rows), each
    plain, encrypted (under an illustration key, never the victim's) and as every applicable attack restored it (columns, labelled with the
    attacker's knowledge), with its raw SSIM and, where the restoration is a transformed copy,
    the SSIM undoing that transform.  A ciphertext of another shape (etc_gray's 1 x 3W strip)
    gets a column as wide as it is, and its caption says so."""
    plain_path = store.example_path(dataset, cipher, "plain")
    if not plain_path.exists():
        return None
    plain, _ = store.load_examples(plain_path)
    picks = distinct_examples(plain)
    columns = ["plain", "encrypted", *_attack_columns(store, frame, run, dataset, cipher)]
    stored = {c: store.load_examples(store.example_path(dataset, cipher, c)) for c in columns if store.example_path(dataset, cipher, c).exists()}
    columns = [c for c in columns if c in stored]
    if NONE_ATTACK in columns and "encrypted" in columns:
        # the raw ciphertext is under the victim's key: beside the plain column it would publish
        # known-plaintext pairs (the encrypted column shows the cipher under an illustration key)
        columns.remove(NONE_ATTACK)
    ratios = [max(1.0, stored[c][0].shape[-1] / stored[c][0].shape[-2]) for c in columns]
    fig = Figure(figsize=(1.5 * sum(ratios) + 0.4, 1.95 * len(picks) + 0.9))
    axes = fig.subplots(len(picks), len(columns), squeeze=False, gridspec_kw={"width_ratios": ratios})
    strip = False
    for r, index in enumerate(picks):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            images, scores = stored[column]
            if r == 0:
                ax.set_title(_column_title(run, column), fontsize=8)
            if c == 0:
                ax.set_ylabel(f"image {index + 1}", fontsize=8)
            if index >= len(images):
                ax.set_axis_off()
                continue
            image = images[index]
            strip |= image.shape[0] == 1 and image.shape[-1] != image.shape[-2]
            ax.imshow(_to_hwc(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="equal")
            if column != "plain" and len(scores) > index:
                extra = _invariant_label(frame, per_image, dataset, cipher, column, index) if c >= 2 else ""
                ax.set_xlabel(f"SSIM {scores[index]:.2f}{extra}", fontsize=6.5)
    title = f"{cipher} on {dataset}: plain, encrypted (under an illustration key) and restored (SSIM against the plain image)"
    if strip:
        height, width = stored["encrypted"][0].shape[-2:]
        title += f"\nencrypted: one grayscale ciphertext of {height} x {width} pixels (the R, G and B planes' blocks side by side, shuffled)"
    fig.suptitle(title, fontsize=8)
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
        parts = ax.boxplot(data, orientation="horizontal", widths=0.6, patch_artist=True, showfliers=False,
                           medianprops={"color": "black", "linewidth": 1.6})
        for patch, name in zip(parts["boxes"], names):
            patch.set_facecolor("0.85" if attack_info(run, name).get("baseline") else "tab:orange")
        ax.set_yticks(range(1, len(names) + 1), [f"{name} (n={len(values)})" for name, values in zip(names, data)], fontsize=7)
        for y, values in enumerate(data, start=1):  # the median's value beside its box
            if len(values):
                ax.annotate(f"{np.median(values):.2f}", (1.0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=6)
        ax.set_xlim(-0.3, 1.02)
        ax.set_title(cipher, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("per-image SSIM; black line: median (value at the right); grey: content-free baselines; n: images", fontsize=8)
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
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.subplots()
    for i, ((cipher, attack), curve) in enumerate(rows.groupby(["cipher", "attack"], sort=True)):
        curve = curve.sort_values("n")
        low, high = curve["ci95_low"].to_numpy(dtype=float), curve["ci95_high"].to_numpy(dtype=float)
        x, y = curve["n"].astype(float).to_numpy(), curve["value"].to_numpy(dtype=float)
        line, = ax.plot(x, y, marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % len(LINESTYLES)], markersize=5,
                        label=f"{attack} on {cipher}")
        if not np.isnan(low).all():
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
    counts = sorted({int(n) for n in rows["n"]})
    ax.set_xscale("log")
    ax.set_xticks(counts, [str(c) for c in counts], fontsize=7)
    ax.minorticks_off()
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(f"victim ciphertexts the attacker holds (one key; {len(counts)} ladder point{'' if len(counts) == 1 else 's'})")
    ax.set_ylabel("mean SSIM of the restorations")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def tradeoff_figure(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any], dataset: str, path: Path) -> Path | None:
    """Accuracy (95% interval) of every (cipher, network) cell against the cipher's deciding
    ciphertext-only attack's SSIM gain over the best content-free baseline (95% interval).  Each
    network has its colour and a dotted line at its plain accuracy; a derived classifier
    (``vit_keyed``) is drawn in its base network's colour, hollow, against that network's line;
    the label gives the accuracy change against that reference."""
    acc = frame[(frame["kind"] == "accuracy") & (frame["status"] == "ok") & (frame["metric"] == "accuracy") & (frame["dataset"] == dataset)]
    references = {r.classifier: r for r in acc[acc["cipher"] == PLAIN].itertuples()}
    points = []
    for cipher in ordered_ciphers(list(acc["cipher"].unique())):
        if cipher == PLAIN or is_identity(run, cipher):
            continue
        verdict = model_verdict(frame, per_image, run, dataset, cipher, CIPHERTEXT_ONLY)
        if verdict is None:
            continue
        for cell in acc[acc["cipher"] == cipher].sort_values("classifier").itertuples():
            points.append((cipher, cell, verdict, plain_base(cell.classifier)))
    if not points:
        return None
    networks = sorted({base or cell.classifier for _, cell, _, base in points} | set(references))
    colours = {net: f"C{i % 10}" for i, net in enumerate(networks)}
    fig = Figure(figsize=(7.6, 4.4))
    ax = fig.subplots()
    stacked: dict[tuple[float, int], int] = {}
    for net in networks:
        if net in references:
            ax.axhline(100 * references[net].value, color=colours[net], linestyle=":", linewidth=1.2, label=f"plain images, {net}")
    for cipher, cell, verdict, base in points:
        best = verdict.deciding
        low, high, accuracy = 100 * cell.ci95_low, 100 * cell.ci95_high, 100 * cell.value
        yerr = None if np.isnan(low) else [[accuracy - low], [high - accuracy]]
        xerr = [[best.gain - best.gain_low], [best.gain_high - best.gain]]
        colour = colours[base or cell.classifier]
        marker = {RESTORES: "X", "?": "s"}.get(verdict.symbol, "o")
        ax.errorbar(best.gain, accuracy, xerr=xerr, yerr=yerr, fmt=marker, color=colour, markersize=7, capsize=2,
                    markerfacecolor="white" if base else colour)
        cost = accuracy_cost(per_image, dataset, cipher, cell.classifier)
        delta = f", {cost[0].value:+.1f} pts" if cost else ""
        spot = (round(best.gain, 2), round(accuracy / 4))  # labels of nearby points stack instead of overlapping
        stacked[spot] = stacked.get(spot, -1) + 1
        ax.annotate(f"{cipher} ({cell.classifier}{delta})", (best.gain, accuracy), textcoords="offset points",
                    xytext=(5, 4 - 9 * stacked[spot]), fontsize=7)
    gains = [verdict.deciding.gain_high for _, _, verdict, _ in points]
    low_end = min([verdict.deciding.gain_low for _, _, verdict, _ in points] + [0.0])
    ax.set_xlim(low_end - 0.05, max(gains) + 0.25 * (max(gains) - low_end) + 0.05)  # room for the labels
    ax.axvline(float(run["config"].get("verdict_margin", 0.05)), color="grey", linestyle="--", linewidth=1, label="verdict margin")
    for symbol, marker, word in ((RESTORES, "X", "restores"), ("?", "s", "inconclusive"), ("✓", "o", "resists")):
        ax.plot([], [], marker, color="0.3", label=f"{symbol} {word}")
    ax.plot([], [], "o", color="0.3", markerfacecolor="white", label="hollow: derived from a\nplain-trained network")
    ax.set_xlabel("deciding ciphertext-only attack: SSIM gain over the best baseline (invariant)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Privacy vs accuracy ({dataset}); pts: change against plain images, same network", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
