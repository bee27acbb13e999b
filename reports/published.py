"""The field's reported numbers (``reports/published.csv``) beside this run's, where the settings match.

A published number is compared only with a cell of the same dataset, cipher and network (accuracy)
or attack (security), measured at the same image size; everything else is listed as not compared.
The file holds the seed's Table I accuracies and the attack authors' box-plot medians of |SSIM|
(their notebook; read by eye), each with its source, table and caveats.  Nothing is typed into
the report: edit the CSV to add a source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.tables import Measure, accuracy_cell

PUBLISHED_FILE = Path(__file__).with_name("published.csv")


def load_published(path: str | Path = PUBLISHED_FILE) -> pd.DataFrame:
    """The published numbers: source, table, dataset, cipher, network, attack, metric, value, image_size, note."""
    frame = pd.read_csv(path, dtype={"network": str, "attack": str, "note": str}, keep_default_na=False)
    frame["value"] = frame["value"].astype(float)
    return frame


def _size(run: dict[str, Any], cipher: str, network: str | None) -> int:
    config = run["config"]
    if network:
        size = (config.get("classifier_image_size") or {}).get(network)
        if size:
            return int(size[0])
    info = run.get("key_spaces", {}).get(cipher, {})
    size = info.get("image_size") or (config.get("cipher_image_size") or {}).get(cipher) or config["image_size"]
    return int(size[0])


def _measured(frame: pd.DataFrame, per_image: pd.DataFrame, row: Any) -> Measure | None:
    if row.metric == "accuracy":
        cell = accuracy_cell(frame, row.dataset, row.cipher, row.network)
        return cell if isinstance(cell, Measure) else None
    if row.metric == "abs_ssim_median":
        scores = per_image[(per_image["kind"] == "security") & (per_image["dataset"] == row.dataset) & (per_image["cipher"] == row.cipher)
                           & (per_image["attack"] == row.attack) & (per_image["metric"] == "ssim")]["value"].to_numpy()
        return Measure(float(np.median(np.abs(scores))), digits=3, note=f"n = {scores.size}") if scores.size else None
    return None


def reported_vs_measured(frame: pd.DataFrame, per_image: pd.DataFrame, run: dict[str, Any],
                         published: pd.DataFrame | None = None) -> tuple[list[str], list[list[str]], str]:
    """(headers, rows, summary): one row per published number whose dataset, cipher and network or
    attack this run measured; ``reported`` and ``measured`` side by side only at the same image size."""
    published = load_published() if published is None else published
    headers = ["source", "table", "dataset", "encryption", "network / attack", "metric", "reported", "measured", "measured - reported", "note"]
    body, compared = [], 0
    for row in published.itertuples():
        measured = _measured(frame, per_image, row)
        if measured is None:
            continue
        size = _size(run, row.cipher, row.network or None)
        if size != int(row.image_size):
            body.append([row.source, row.table, row.dataset, row.cipher, row.network or row.attack, row.metric, f"{row.value:g}",
                         f"not compared: measured at {size}x{size}, reported at {row.image_size}x{row.image_size}", "", row.note])
            continue
        compared += 1
        body.append([row.source, row.table, row.dataset, row.cipher, row.network or row.attack, row.metric, f"{row.value:g}",
                     str(measured), f"{measured.value - row.value:+.{measured.digits}f}", row.note])
    datasets = sorted(set(published["dataset"]))
    measured_sets = ", ".join(f"`{d}`" for d in run["config"]["datasets"])
    if not body:
        summary = (f"No measured cell matches a published setting: the published numbers ({len(published)} in "
                   f"`reports/published.csv`) are on {', '.join(f'`{d}`' for d in datasets)}, this run measured {measured_sets} "
                   f"(preset `{run['config']['preset']}`). Comparing them would compare different data, so nothing is compared; "
                   "the `paper` preset on CIFAR fills this section.")
    else:
        summary = (f"{compared} published number(s) compared with this run's cells of the same dataset, cipher, network or "
                   "attack and image size; the rest of the rows name what differs. Accuracy in %, [95% interval]; "
                   "|SSIM| medians over the evaluated images (n beside). Training budgets and implementations may still differ (see each note).")
    return headers, body, summary
