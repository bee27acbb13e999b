"""A run under torchrun: two real gloo processes share each accuracy cell (DDP) and rank 0 alone
records; the results match a one-process run within the documented tolerance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.results import ResultStore
from harness.run.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "n_train": 64, "n_test": 40, "n_attacker": 40, "known_pairs": 4, "examples": 2,
    "classifiers": {"vit": {"epochs": 2, "batch_size": 16, "lr": 0.05, "warmup_epochs": 0,
                            "model_options": {"size": "nano", "embed_dim": 32, "depth": 1, "num_heads": 2}}},
}
#: DDP averages the two ranks' gradients in a different order than one process sums them
LOSS_TOLERANCE = 1e-3


def test_torchrun_shares_accuracy_cells_and_rank_zero_alone_records(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    argv = ["run", "--config", str(config), "--ciphers", "plain,proposed", "--classifiers", "vit,vit_keyed",
            "--attacks", "none,kpa", "--progress", "none", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(REPO / "run_bench.py")]
    done = subprocess.run([*launch, *argv, "--out", str(tmp_path / "ddp")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert main([*argv, "--out", str(tmp_path / "one")], stdout=lambda line: None) == 0

    assert ResultStore(tmp_path / "ddp").read_run()["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert "distributed" not in ResultStore(tmp_path / "one").read_run()
    ddp, one = (ResultStore(tmp_path / name).load() for name in ("ddp", "one"))
    assert (ddp["status"] == "ok").all() and len(list((tmp_path / "ddp" / "cells").glob("*.json"))) == len(set(ddp["cell_hash"]))
    key = ["kind", "cipher", "classifier", "attack", "metric"]
    ddp_values, one_values = (frame.set_index(key)["value"] for frame in (ddp, one))
    assert set(ddp_values.index) == set(one_values.index)
    security = [i for i in one_values.index if i[0] == "security" and i[-1] in ("ssim", "psnr", "identification")]
    assert all(ddp_values[i] == one_values[i] for i in security), "rank 0 computes security cells as one process does"
    for cipher in ("plain", "proposed"):
        index = ("accuracy", cipher, "vit", "", "final_train_loss")
        assert abs(ddp_values[index] - one_values[index]) < LOSS_TOLERANCE
    # vit_keyed transformed the model both ranks trained, read back from rank 0's cache entry
    assert ddp_values[("accuracy", "proposed", "vit_keyed", "", "accuracy")] == ddp_values[("accuracy", "plain", "vit", "", "accuracy")]
