"""PNG figures rendered from a run folder's stored example images and results rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no global backend switch

from harness.results import ResultStore
from reports.tables import CIPHERTEXT_ONLY, NONE_ATTACK, best_attacks, ordered_ciphers


def _to_hwc(image: np.ndarray) -> np.ndarray:
    """CHW uint8 -> HWC for imshow (grayscale ciphertexts stay 2-D)."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def examples_figure(store: ResultStore, frame: pd.DataFrame, dataset: str, path: Path, index: int = 0) -> Path | None:
    """The seed's Fig. 4 layout: per cipher, plain, encrypted and each attack's restoration."""
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
                ax.set_xlabel(f"SSIM {scores[index]:.2f}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def tradeoff_figure(frame: pd.DataFrame, run: dict[str, Any], dataset: str, path: Path) -> Path | None:
    """Accuracy of each cipher's best network against its strongest ciphertext-only attack's SSIM."""
    best = best_attacks(frame, run, CIPHERTEXT_ONLY)
    acc = frame[(frame["kind"] == "accuracy") & (frame["status"] == "ok") & (frame["metric"] == "accuracy") & (frame["dataset"] == dataset)]
    points = []
    for cipher in ordered_ciphers(list(acc["cipher"].unique())):
        if (dataset, cipher) in best and best[(dataset, cipher)][1] == best[(dataset, cipher)][1]:
            cell = acc[acc["cipher"] == cipher].sort_values("value").iloc[-1]
            points.append((cipher, cell["classifier"], best[(dataset, cipher)][1], 100 * cell["value"]))
    if not points:
        return None
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    for cipher, classifier, leak, accuracy in points:
        ax.scatter(leak, accuracy, s=40)
        ax.annotate(f"{cipher} ({classifier})", (leak, accuracy), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axvline(float(run["config"]["verdict_threshold"]), color="grey", linestyle="--", linewidth=1, label="verdict threshold")
    ax.set_xlabel("strongest ciphertext-only attack: mean SSIM (lower hides more)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Privacy vs accuracy ({dataset})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
