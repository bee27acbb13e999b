"""Cells as the runner stores them: intervals, identification, the ciphertext ladder, the per-image
table, and statistical attacks seeing the victim's encrypted training set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.run import CellContext, Runner, plan
from harness.run.config import resolve_config
from harness.results import ResultStore, rows_frame, validate_results

TINY = {
    "n_train": 60, "n_test": 40, "n_attacker": 30, "image_size": [16, 16], "known_pairs": 8, "ciphertext_ladder": [10, 30],
    "classifiers": {"resnet18": {"epochs": 1, "batch_size": 32, "model_options": {"width": 4}}},
}


@pytest.fixture
def runner(tmp_path) -> Runner:
    config = resolve_config("quick")
    config.update(TINY)
    return Runner(CellContext(config, tmp_path / "run"))


def _metric(rows, name):
    return next(r for r in rows if r["metric"] == name)


def test_security_cell_rows_per_image_scores_and_ladder(runner) -> None:
    cell = plan.Cell("security", "natural", "proposed", attack="puzzle")
    rows = runner.run_cell(cell)
    validate_results(rows_frame(rows))
    evaluated = 40 - 8
    assert _metric(rows, "ciphertexts_seen")["value"] == evaluated + 60  # test ciphertexts + the encrypted training set
    identification = _metric(rows, "identification")
    assert identification["n"] == evaluated and 0 <= identification["ci95_low"] <= identification["value"] <= identification["ci95_high"]
    curve = [(r["n"], r["value"]) for r in rows if r["metric"] == "ssim_vs_ciphertexts"]
    assert [n for n, _ in curve] == [10, 30, evaluated + 60]
    assert _metric(rows, "abs_ssim")["value"] >= _metric(rows, "ssim")["value"] - 1e-12
    table = ResultStore(runner.store.folder).load_per_image()
    mine = table[(table["cipher"] == "proposed") & (table["attack"] == "puzzle")]
    assert set(mine["metric"]) == {"ssim", "psnr", "identified", "ssim_invariant", "psnr_invariant", "identified_invariant"}
    ssim = mine[mine["metric"] == "ssim"].sort_values("image_id")["value"].to_numpy()
    assert ssim.shape == (evaluated,) and np.isclose(ssim.mean(), _metric(rows, "ssim")["value"])


def test_a_rerun_cell_replaces_its_per_image_rows(runner) -> None:
    cell = plan.Cell("security", "natural", "plain", attack="none")
    runner.run_cell(cell)
    runner.run_cell(cell)
    table = runner.store.load_per_image()
    assert len(table) == 6 * (40 - 8)


def test_the_example_ciphertexts_use_an_illustration_key_not_the_victims(runner) -> None:
    """A plain example beside its ciphertext under the victim's key would be a known-plaintext pair
    in the report; the figure's ciphertexts come from another key of the same cipher."""
    from harness.run.cells import compute_cell

    ctx = runner.ctx
    examples = {name: images for name, images, _ in compute_cell(plan.Cell("key_space", "natural", "proposed"), ctx).examples}
    plain = torch.from_numpy(examples["plain"])
    ids = torch.arange(len(plain))
    assert np.array_equal(examples["encrypted"], ctx.illustration_cipher("proposed").encrypt(plain, ids).numpy())
    assert not np.array_equal(examples["encrypted"], ctx.victim_cipher("proposed").encrypt(plain, ids).numpy())
    assert torch.equal(ctx.illustration_cipher("proposed").decrypt(torch.from_numpy(examples["encrypted"]), ids), plain)


def test_accuracy_cell_repeats_seeds_and_gives_a_bootstrap_interval(runner) -> None:
    runner.ctx.config["accuracy_seeds"] = 2
    rows = runner.run_cell(plan.Cell("accuracy", "natural", "plain", classifier="resnet18"))
    accuracy = _metric(rows, "accuracy")
    assert accuracy["ci95_low"] <= accuracy["value"] <= accuracy["ci95_high"] and "2 training seed(s)" in accuracy["note"]
    assert _metric(rows, "accuracy_seed_sd")["value"] >= 0
    correct = runner.store.load_per_image()
    correct = correct[correct["metric"] == "correct"]["value"].to_numpy()
    assert correct.shape == (40,) and set(np.unique(correct)) <= {0.0, 0.5, 1.0}
    assert np.isclose(correct.mean(), accuracy["value"])


def test_two_worker_processes_store_exactly_the_rows_of_a_serial_run(tmp_path) -> None:
    from harness.run.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text("n_train: 30\nn_test: 30\nn_attacker: 20\nimage_size: [16, 16]\nknown_pairs: 8\nciphertext_ladder: [10]\n")
    frames = []
    for name, workers in (("serial", "1"), ("parallel", "2")):
        argv = ["--config", str(config), "--ciphers", "plain,proposed", "--attacks", "none,mean_colour,kpa,puzzle",
                "--kinds", "key_space,security", "--out", str(tmp_path / name), "--progress", "none", "--workers", workers]
        assert main(argv, stdout=lambda line: None) == 0
        store = ResultStore(tmp_path / name)
        rows = store.load().drop(columns=["elapsed_s"]).sort_values(["kind", "cipher", "attack", "metric", "n"]).reset_index(drop=True)
        per_image = store.load_per_image().sort_values(["cipher", "attack", "metric", "image_id"]).reset_index(drop=True)
        frames.append((rows, per_image))
    (serial, serial_images), (parallel, parallel_images) = frames
    assert serial.equals(parallel) and serial_images.equals(parallel_images)
