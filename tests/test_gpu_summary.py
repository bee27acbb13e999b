"""The GPU checks' summary table (benchmarks/gpu_summary.py): goals judged from the files the steps wrote."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.gpu_summary import summary


def _write_run(out: Path, ratio: float, syncs: float, pe: float, none_s: float) -> None:
    (out / "steps.tsv").write_text("device_tests\t0\t40\nthroughput\t0\t150\npe_rate\t0\t5\nsecurity_cells\t0\t20\ntime_model\t124\t90\n")
    (out / "device_tests.txt").write_text("....\n78 passed, 1 skipped, 1345 deselected in 31.2s\n")  # pytest -q's last line
    row = {"case": "paper: vit base, 224x224, batch 128", "mode": "compiled", "device": "cuda",
           "harness img/s": 3300.0 * ratio, "bare timm img/s": 3300.0, "ratio": ratio, "host syncs per step": syncs}
    (out / "throughput.json").write_text(json.dumps({"benchmarks": [{"extra_info": row}]}))
    (out / "pe_rate.json").write_text(json.dumps({"side": 224, "batch": 1024, "images_per_s": pe}))
    rows = [{"cell": "security proposed/none", "images": "2000 + 10000", "cold s": 3.0, "warm s": none_s}]
    (out / "security_cells.json").write_text(json.dumps({"rows": rows}))


def _results(text: str) -> dict[str, str]:
    """check -> result column of the markdown table."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[3:]]
    return {row[0]: row[-1] for row in cells}


def test_each_goal_is_judged_and_a_timed_out_step_fails(tmp_path: Path) -> None:
    _write_run(tmp_path, ratio=0.97, syncs=0.0, pe=150_000.0, none_s=0.4)
    results = _results(summary(tmp_path, tiny=False, total_seconds=320))
    assert results == {
        "device tests (--device)": "pass",
        "paper: vit base, 224x224, batch 128, compiled: harness / bare": "pass",
        "paper: vit base, 224x224, batch 128, compiled: host syncs per step": "pass",
        "pe encrypt rate at 224x224, batch 1024": "pass",
        "security proposed/none": "pass",
        "time model of the paper grid": "FAIL",  # exit 124: no estimate printed
        "step time_model": "FAIL",
        "whole script": "pass",
    }
    _write_run(tmp_path, ratio=0.90, syncs=2.0, pe=50_000.0, none_s=1.5)
    (tmp_path / "time_model.txt").write_text("estimated paper grid: 3.50 h on 1 device, 0.61 h on 8\n")
    text = summary(tmp_path, tiny=False, total_seconds=500)
    assert set(_results(text).values()) == {"pass", "FAIL"} and list(_results(text).values()).count("pass") == 2  # tests, time model
    assert "3.50 h on 1 device, 0.61 h on 8" in text


def test_tiny_mode_says_ran_instead_of_judging_gpu_goals(tmp_path: Path) -> None:
    _write_run(tmp_path, ratio=0.5, syncs=0.0, pe=1_000.0, none_s=10.0)
    results = _results(summary(tmp_path, tiny=True, total_seconds=900))
    assert results["pe encrypt rate at 224x224, batch 1024"] == "ran" and results["device tests (--device)"] == "pass"
    assert results["time model of the paper grid"] == "FAIL" and results["whole script"] == "ran"
