"""The seed's qualitative claims, checked against the measured numbers (never typed in).

Each claim is decided with an interval: accuracy gaps by a paired bootstrap over the test images
both cells classified, security claims by the verdict rule of :mod:`reports.verdicts`.  A claim
whose interval straddles its limit is "inconclusive", not "holds".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.stats import bootstrap_mean_interval
from reports.verdicts import CIPHERTEXT_ONLY, RESISTS, RESTORES, WORDS, model_verdict

#: "close to plain accuracy" for the proposed cipher with ViT, in accuracy points
CLOSE_POINTS = 5.0


def _correct(per_image: pd.DataFrame, dataset: str, cipher: str, classifier: str) -> np.ndarray | None:
    rows = per_image[(per_image["kind"] == "accuracy") & (per_image["dataset"] == dataset) & (per_image["cipher"] == cipher)
                     & (per_image["classifier"] == classifier) & (per_image["metric"] == "correct")]
    return rows.sort_values("image_id")["value"].to_numpy() if len(rows) else None


def _accuracy_claim(per_image: pd.DataFrame, dataset: str, classifier: str, claim: str) -> str:
    plain, proposed = _correct(per_image, dataset, "plain", "vit"), _correct(per_image, dataset, "proposed", classifier)
    if plain is None or proposed is None or plain.shape != proposed.shape:
        return f"{dataset}: 'proposed + {classifier} {claim}': not measured."
    gap, low, high = (100 * v for v in bootstrap_mean_interval(plain - proposed))
    if classifier == "vit_keyed":  # the claim is exact equality: the same images right and wrong
        state = "holds" if np.array_equal(plain, proposed) else "does not hold"
        limit = "identical per-image predictions"
    else:
        state = "holds" if high <= CLOSE_POINTS else "does not hold" if low > CLOSE_POINTS else "is inconclusive"
        limit = f"limit {CLOSE_POINTS:g} points, decided on the interval"
    return (
        f"{dataset}: 'proposed + {classifier} {claim}' {state}: {100 * proposed.mean():.1f}% vs {100 * plain.mean():.1f}% "
        f"for plain ViT (gap {gap:+.1f} points, 95% paired bootstrap [{low:+.1f}, {high:+.1f}]; {limit})."
    )


def findings(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any]) -> list[str]:
    """One sentence per claim and dataset: holds, does not hold, inconclusive or not measured."""
    lines = []
    for dataset in run["config"]["datasets"]:
        lines.append(_accuracy_claim(per_image, dataset, "vit", "costs little accuracy"))
        lines.append(_accuracy_claim(per_image, dataset, "vit_keyed", "costs no accuracy with the key-transformed ViT"))
        for group, expected in ((("le", "pe"), "is partly restored by"), (("etc", "ele", "proposed"), "resists")):
            for cipher in group:
                verdict = model_verdict(frame, per_image, run, dataset, cipher, CIPHERTEXT_ONLY)
                if verdict is None:
                    lines.append(f"{dataset}: '{cipher} {expected} ciphertext-only attacks': not measured.")
                    continue
                wanted = RESTORES if expected == "is partly restored by" else RESISTS
                other = RESISTS if wanted == RESTORES else RESTORES
                state = "holds" if verdict.symbol == wanted else "does not hold" if verdict.symbol == other else "is inconclusive"
                best = verdict.deciding
                lines.append(
                    f"{dataset}: '{cipher} {expected} ciphertext-only attacks' {state}: deciding attack {best.attack} "
                    f"reaches SSIM {best.ssim:.3f} up to '{best.transform}' (raw {best.raw_ssim:.3f}) vs the best content-free "
                    f"baseline {best.baseline} {best.baseline_ssim:.3f} (gain {best.gain:+.3f}, 95% [{best.gain_low:+.3f}, "
                    f"{best.gain_high:+.3f}]) and identifies {100 * best.identification:.1f}% of the images "
                    f"({WORDS[verdict.symbol]}: {verdict.reason})."
                )
    return lines
