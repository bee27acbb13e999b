"""The seed's qualitative claims, checked against the measured numbers (never typed in)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.tables import CIPHERTEXT_ONLY, best_attacks

#: "close to plain accuracy" for the proposed cipher with ViT, in accuracy points
CLOSE_POINTS = 5.0


def _accuracy(frame: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> float | None:
    hit = frame[
        (frame["kind"] == "accuracy") & (frame["status"] == "ok") & (frame["metric"] == "accuracy")
        & (frame["dataset"] == dataset) & (frame["cipher"] == cipher) & (frame["classifier"] == classifier)
    ]
    return float(hit["value"].iloc[0]) * 100 if len(hit) else None


def findings(frame: pd.DataFrame, run: dict[str, Any]) -> list[str]:
    """One sentence per claim and dataset: holds, does not hold, or not measured."""
    threshold = float(run["config"]["verdict_threshold"])
    coa = best_attacks(frame, run, CIPHERTEXT_ONLY)
    lines = []
    for dataset in run["config"]["datasets"]:
        plain_vit = _accuracy(frame, dataset, "plain", "vit")
        for classifier, claim in (("vit", "costs little accuracy"), ("vit_keyed", "costs no accuracy with the key-transformed ViT")):
            proposed = _accuracy(frame, dataset, "proposed", classifier)
            if plain_vit is None or proposed is None:
                lines.append(f"{dataset}: 'proposed + {classifier} {claim}': not measured.")
                continue
            gap = plain_vit - proposed
            limit = 1e-9 if classifier == "vit_keyed" else CLOSE_POINTS
            state = "holds" if gap <= limit else "does not hold"
            lines.append(
                f"{dataset}: 'proposed + {classifier} {claim}' {state}: {proposed:.2f}% vs {plain_vit:.2f}% for plain ViT "
                f"(gap {gap:+.2f} points; limit {limit if classifier == 'vit' else 0:g})."
            )
        for group, expected in ((("le", "pe"), "is partly restored by"), (("etc", "ele", "proposed"), "resists")):
            for cipher in group:
                best = coa.get((dataset, cipher))
                if best is None or best[1] != best[1]:  # missing, or only n/a attacks
                    lines.append(f"{dataset}: '{cipher} {expected} ciphertext-only attacks': not measured.")
                    continue
                restored = best[1] >= threshold
                state = "holds" if restored == (expected == "is partly restored by") else "does not hold"
                lines.append(
                    f"{dataset}: '{cipher} {expected} ciphertext-only attacks' {state}: strongest attack "
                    f"{best[0]} reaches mean SSIM {best[1]:.3f} (threshold {threshold:.2f})."
                )
    return lines
