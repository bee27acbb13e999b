"""Published numbers as data (reports/published.csv) and the report's "reported vs measured" section."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pandas as pd

from harness.results import ResultStore
from reports.markdown import render_report
from reports.published import load_published, reported_vs_measured

GOLDEN_RUN = Path(__file__).parent / "golden" / "tiny_run"


def test_the_file_holds_the_seeds_table_one_and_the_attack_medians_with_sources() -> None:
    published = load_published()
    assert {"source", "table", "dataset", "cipher", "network", "attack", "metric", "value", "image_size", "note"} <= set(published.columns)
    seed = published[(published["table"] == "Table I")].set_index(["dataset", "cipher", "network"])["value"]
    assert seed[("cifar10", "proposed", "vit")] == 96.64 and seed[("cifar100", "plain", "vit")] == 92.48
    assert seed[("cifar10", "le", "adaptation")] == 94.49 and len(seed) == 14
    medians = published[published["metric"] == "abs_ssim_median"].set_index(["cipher", "attack"])["value"]
    assert medians[("le", "gan")] == 0.66 and medians[("pe", "fr")] == 0.31
    assert (published["source"] != "").all() and published["value"].notna().all()


def _golden():
    store = ResultStore(GOLDEN_RUN)
    return store.load(), store.load_per_image(), store.read_run()


def test_quick_preset_on_natural_compares_nothing_and_says_so() -> None:
    frame, per_image, run = _golden()
    headers, body, summary = reported_vs_measured(frame, per_image, run)
    assert body == [] and "No measured cell matches a published setting" in summary and "`natural`" in summary


def test_matching_settings_are_compared_and_different_sizes_are_not(tmp_path: Path) -> None:
    frame, per_image, run = _golden()
    frame, per_image, run = frame.copy(), per_image.copy(), copy.deepcopy(run)
    frame["dataset"] = frame["dataset"].replace("natural", "cifar10")
    per_image["dataset"] = per_image["dataset"].replace("natural", "cifar10")
    run["config"]["datasets"] = ["cifar10"]
    run["config"]["classifier_image_size"] = {"vit": [224, 224]}
    for info in run["key_spaces"].values():
        info["image_size"] = [32, 32]
    run["config"]["image_size"] = [32, 32]
    headers, body, summary = reported_vs_measured(frame, per_image, run)
    rows = {(r[3], r[4], r[5]): r for r in body}
    plain_vit = rows[("plain", "vit", "accuracy")]
    assert plain_vit[6] == "99.11" and plain_vit[7].startswith("21.7 [") and plain_vit[8] == f"{21.666666 - 99.11:+.1f}"
    assert rows[("pe", "fr", "abs_ssim_median")][7].endswith("(n = 52)")
    assert rows[("plain", "resnet18", "accuracy")][7].startswith("15.0")  # 32x32 as reported
    assert "compared" in summary and ("cifar100", "plain", "vit") not in {(r[2], r[3], r[4]) for r in body}
    run["config"]["classifier_image_size"] = {}
    _, body, _ = reported_vs_measured(frame, per_image, run)
    assert {(r[3], r[4]): r for r in body}[("plain", "vit")][7] == "not compared: measured at 32x32, reported at 224x224"


def test_the_report_has_the_section(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(GOLDEN_RUN, run)
    text = render_report(run).read_text()
    assert "## Reported vs measured" in text and "No measured cell matches a published setting" in text
