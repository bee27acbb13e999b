"""The `paper` preset's whole path (CIFAR folders, per-classifier sizes, 16 x 16 blocks at 224-style
upsampling) on tiny CIFAR-format data that the test writes, with tiny networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.run.cli import main
from harness.results import ResultStore
from tests.cifar_folders import write_cifar10, write_cifar100

pytestmark = pytest.mark.usefixtures("single_thread")

#: the paper preset, shrunk: 64 x 64 stands in for 224 x 224 (still 16 x 16 blocks), one epoch,
#: tiny networks, no pretrained download
TINY_PAPER = {
    "cipher_image_size": {"proposed": [64, 64]},
    "classifier_image_size": {"vit": [64, 64]},
    "examples": 2,
    "known_pairs": 3,
    "classifiers": {
        "vit": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0,
                "model_options": {"size": "nano", "embed_dim": 32, "depth": 1, "num_heads": 2, "pretrained": False, "pretrained_tag": None}},
        "resnet18": {"epochs": 1, "batch_size": 8, "model_options": {"width": 8}},
        "shakedrop": {"epochs": 1, "batch_size": 8, "model_options": {"depth": 8, "alpha": 8}},
        "adaptation": {"epochs": 1, "batch_size": 8, "model_options": {"backbone_options": {"depth": 8, "alpha": 8}}},
    },
}


def test_paper_preset_runs_end_to_end_on_cifar_format_folders(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data", per_batch=8)
    write_cifar100(tmp_path / "data", train=24, test=8)
    config = tmp_path / "tiny_paper.yaml"
    config.write_text(yaml.safe_dump(TINY_PAPER))
    out = tmp_path / "run"
    argv = [
        "--preset", "paper", "--config", str(config), "--data-dir", str(tmp_path / "data"),
        "--ciphers", "plain,proposed,le", "--attacks", "none,kpa", "--out", str(out), "--progress", "none",
    ]
    assert main(argv, stdout=lambda line: None) == 0
    frame = ResultStore(out).load()
    accuracy = frame[(frame["kind"] == "accuracy") & (frame["metric"] == "accuracy")]
    assert set(accuracy["dataset"]) == {"cifar10", "cifar100"}
    expected = {("plain", "vit"), ("plain", "resnet18"), ("plain", "shakedrop"), ("proposed", "vit"), ("proposed", "vit_keyed"), ("le", "adaptation")}
    assert set(zip(accuracy["cipher"], accuracy["classifier"])) == expected
    assert (frame["status"] == "ok").all()
    run = ResultStore(out).read_run()
    assert run["key_spaces"]["proposed"]["image_size"] == [64, 64] and run["key_spaces"]["proposed"]["block_size"] == 16
    assert run["key_spaces"]["le"]["image_size"] == [32, 32]
    # vit_keyed transformed the plain vit of the 64 x 64 plain cell: same accuracy, no retraining
    for dataset in ("cifar10", "cifar100"):
        rows = accuracy[accuracy["dataset"] == dataset].set_index(["cipher", "classifier"])["value"]
        assert rows[("proposed", "vit_keyed")] == rows[("plain", "vit")]
    kpa = frame[(frame["attack"] == "kpa") & (frame["cipher"] == "proposed") & (frame["metric"] == "ssim")]
    assert (kpa["value"] > 0.99).all()
    report = (out / "report.md").read_text()
    assert "cifar10 accuracy (%)" in report and "cifar100 accuracy (%)" in report
