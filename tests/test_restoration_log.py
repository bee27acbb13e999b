"""``--log-restorations``: every restored image of every security cell, one private archive per
cell and an index, written from worker processes' outputs, kept by resume; nothing without the flag."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import scramblebench as sb
from harness.restorations import load_restorations
from harness.results import ResultStore
from harness.run.cells import CellContext
from harness.run.cli import main

CONFIG = "n_train: 16\nn_test: 12\nn_attacker: 10\nimage_size: [16, 16]\nknown_pairs: 4\nciphertext_ladder: [10]\nexamples: 2\n"
EVALUATED = 12 - 4  # the known-pair pool is never scored
GRID = ["--ciphers", "plain,le", "--attacks", "none,mean_image", "--kinds", "security", "--progress", "none"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(CONFIG)
    return path


def _run(out: Path, config: Path, *flags: str) -> None:
    assert main(["--config", str(config), "--out", str(out), *GRID, *flags], stdout=lambda line: None) == 0


def _logs(out: Path) -> dict[Path, tuple[int, str]]:
    """Every archive with its file version and the finished time of its cell's record."""
    index = pd.read_csv(out / "restorations" / "index.csv")
    store = ResultStore(out)
    return {out / row.file: ((out / row.file).stat().st_mtime_ns, store.read_record(store.record_path(row.cell_hash))["finished"])
            for row in index.itertuples()}


def test_every_restoration_of_every_cell_is_logged_from_worker_processes(tmp_path, config) -> None:
    out = tmp_path / "run"
    _run(out, config, "--workers", "2", "--log-restorations")
    results = ResultStore(out).load()
    cells = results[(results["kind"] == "security") & (results["metric"] == "ssim")]
    assert len(cells) == 4 and set(cells["status"]) == {"ok"}
    index = pd.read_csv(out / "restorations" / "index.csv")
    assert sorted(zip(index["cipher"], index["attack"], index["cell_hash"])) == sorted(zip(cells["cipher"], cells["attack"], cells["cell_hash"]))
    assert set(index["images"]) == {EVALUATED} and set(index["threat_model"]) == {"ciphertext-only"}
    per_image = ResultStore(out).load_per_image()
    test_split = CellContext(ResultStore(out).read_run()["config"], out).dataset("natural", "test", (16, 16)).images.numpy()
    for row in index.itertuples():
        path = out / row.file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        log = load_restorations(path)
        assert set(log) == {"restored", "image_id", "shape", "cell_hash", "threat_model", "dataset", "cipher", "attack", "score_ssim",
                            "score_psnr", "score_identified", "score_ssim_invariant", "score_psnr_invariant", "score_identified_invariant"}
        assert log["restored"].dtype == np.uint8 and log["restored"].shape == (EVALUATED, 3, 16, 16)
        assert log["image_id"].tolist() == list(range(EVALUATED)) and str(log["cell_hash"]) == row.cell_hash
        mine = per_image[(per_image["cell_hash"] == row.cell_hash) & (per_image["metric"] == "ssim")]
        assert np.allclose(log["score_ssim"], mine.sort_values("image_id")["value"])
        if (row.cipher, row.attack) == ("plain", "none"):  # the restoration is the evaluated image itself, in order
            assert np.array_equal(log["restored"], test_split[log["image_id"]])
    assert stat.S_IMODE((out / "restorations").stat().st_mode) == 0o700


def test_nothing_is_logged_without_the_flag_and_a_resumed_run_keeps_the_logs(tmp_path, config) -> None:
    out = tmp_path / "run"
    _run(out, config)
    assert not (out / "restorations").exists()
    _run(out, config, "--log-restorations")  # finished cells without a log are recomputed once
    logged = _logs(out)
    assert len(logged) == 4
    _run(out, config, "--log-restorations")  # resumed: nothing recomputed, nothing rewritten
    _run(out, config)
    assert _logs(out) == logged
    damaged = next(iter(logged))
    damaged.write_bytes(damaged.read_bytes()[:100])
    _run(out, config, "--log-restorations")  # a damaged archive is a missing log: that cell is redone
    assert load_restorations(damaged)["restored"].shape == (EVALUATED, 3, 16, 16)
    assert {p: v for p, v in _logs(out).items() if p != damaged} == {p: v for p, v in logged.items() if p != damaged}


def test_merge_copies_the_shards_logs(tmp_path, config) -> None:
    shards = [tmp_path / "a", tmp_path / "b"]
    for i, shard in enumerate(shards, 1):
        _run(shard, config, "--shard", f"{i}/2", "--log-restorations")
    assert main(["merge", str(tmp_path / "all"), *map(str, shards)], stdout=lambda line: None) == 0
    merged = pd.read_csv(tmp_path / "all" / "restorations" / "index.csv")
    assert len(merged) == 4 and all((tmp_path / "all" / f).is_file() for f in merged["file"])


def test_the_api_logs_restorations(tmp_path) -> None:
    tiny = {"n_train": 16, "n_test": 12, "n_attacker": 10, "image_size": [16, 16], "known_pairs": 4}
    run = sb.security_cell(tmp_path / "api", "natural", "plain", "none", config=tiny, device="cpu", log_restorations=True)
    assert run.restorations[["cipher", "attack", "images"]].values.tolist() == [["plain", "none", EVALUATED]]
    restored = run.restored("natural", "plain", "none")["restored"]
    assert torch.from_numpy(restored).dtype == torch.uint8 and restored.shape == (EVALUATED, 3, 16, 16)
