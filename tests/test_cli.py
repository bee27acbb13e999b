"""run_bench.py in-process: usage errors, dry run, resume after an interruption, golden report."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from harness import bench
from harness.cli import main
from harness.results import ResultStore, ResultsSchemaError, rows_frame, validate_results

GOLDEN = Path(__file__).parent / "golden"
TINY = {"n_train": 20, "n_test": 10, "n_attacker": 10, "image_size": [16, 16], "examples": 2}


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items()) + "\n")
    return path


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    lines: list[str] = []
    code = main(list(argv), stdout=lines.append)
    return code, "\n".join(lines), capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ciphers", "propsed"], "Did you mean 'proposed'"),
        (["--attacks", "zz*"], "unknown attack 'zz*'"),
        (["--preset", "huge"], "invalid choice"),
        (["--config", "/nonexistent.yaml"], "does not exist"),
        (["--ciphers", ","], "empty list"),
        (["--seed", "x"], "invalid int value"),
        (["--kinds", "accuracy,speed"], "unknown kind(s) ['speed']"),
        (["--threads", "-1"], "--threads must be 0"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, message, tmp_path) -> None:
    code, _, err = _run(capsys, *argv, "--out", str(tmp_path), "--dry-run")
    assert code == 2
    assert message in err


def test_config_file_with_unknown_key_is_rejected(capsys, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("n_trian: 5\n")
    code, _, err = _run(capsys, "--config", str(path), "--dry-run")
    assert code == 2 and "unknown key(s) ['n_trian']" in err


def test_list_shows_plugins_with_origin(capsys) -> None:
    code, out, _ = _run(capsys, "--list")
    assert code == 0
    assert "proposed" in out and "builtin" in out and "ciphers.proposed.ProposedCipher" in out


def test_dry_run_lists_the_grid_and_runs_nothing(capsys, tmp_path, tiny_config) -> None:
    out = tmp_path / "run"
    code, text, _ = _run(capsys, "--config", str(tiny_config), "--ciphers", "plain,pro*", "--out", str(out), "--dry-run")
    assert code == 0
    assert "to do  key_space: natural / proposed / key space" in text
    assert not out.exists()


def test_key_space_run_writes_results_report_and_figure(capsys, tmp_path, tiny_config) -> None:
    out = tmp_path / "run"
    code, text, _ = _run(
        capsys, "--config", str(tiny_config), "--ciphers", "plain,proposed", "--kinds", "key_space",
        "--out", str(out), "--progress", "plain",
    )
    assert code == 0, text
    frame = ResultStore(out).load()
    rows = frame[(frame["cipher"] == "proposed") & (frame["metric"] == "key_space_log2")]
    assert rows["value"].iloc[0] == pytest.approx(math.log2(math.factorial(16) * math.factorial(4)))
    report = (out / "report.md").read_text()
    assert "| proposed" in report and "figures/examples_natural.png" in report
    assert (out / "figures" / "examples_natural.png").stat().st_size > 1000
    run = ResultStore(out).read_run()
    assert run["key_spaces"]["proposed"]["nominal"] == str(math.factorial(16) * math.factorial(4))
    assert run["config"]["n_train"] == 20 and run["git_commit"]
    assert "block_perm" not in (out / "run.json").read_text()


def _fake_rows(runner: bench.Runner, cell: bench.Cell) -> list[dict]:
    return [{**runner.provenance(cell), "status": "ok", "metric": "key_space_log2", "value": 1.0}]


def test_interrupted_run_resumes_without_recomputing(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    out, calls, interrupt_after = tmp_path / "run", [], 1

    def interrupted(runner, cell):
        if len(calls) == interrupt_after:
            raise KeyboardInterrupt
        calls.append(cell.id)
        return _fake_rows(runner, cell)

    argv = ["--config", str(tiny_config), "--ciphers", "plain,proposed", "--kinds", "key_space", "--out", str(out), "--progress", "none"]
    monkeypatch.setattr(bench.Runner, "run_cell", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(capsys, *argv)
    assert len(ResultStore(out).load()) == 1  # the finished cell was stored before the interruption

    resumed: list = []
    monkeypatch.setattr(bench.Runner, "run_cell", lambda runner, cell: resumed.append(cell.id) or _fake_rows(runner, cell))
    assert _run(capsys, *argv)[0] == 0
    assert resumed and not set(resumed) & set(calls)  # nothing finished was recomputed
    assert _run(capsys, *argv)[0] == 0
    assert len(resumed) == 1  # a third run finds everything done
    code, text, _ = _run(capsys, *argv, "--dry-run")
    assert "to do" not in text and "2 already done" in text
    assert _run(capsys, *argv, "--no-resume")[0] == 0
    assert len(resumed) == 3  # --no-resume starts afresh


def test_failing_cell_is_recorded_and_exit_code_is_1(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    out = tmp_path / "run"

    def flaky(runner, cell):
        if cell.cipher == "proposed":
            raise RuntimeError("simulated failure")
        return _fake_rows(runner, cell)

    monkeypatch.setattr(bench.Runner, "run_cell", flaky)
    argv = ["--config", str(tiny_config), "--ciphers", "plain,proposed", "--kinds", "key_space", "--out", str(out), "--progress", "none"]
    code, text, _ = _run(capsys, *argv)
    assert code == 1 and "1 failed" in text
    report = (out / "report.md").read_text()
    assert "## Failed cells" in report and "RuntimeError: simulated failure" in report
    assert "simulated failure" in (out / "errors.log").read_text()
    monkeypatch.setattr(bench.Runner, "run_cell", _fake_rows)
    assert _run(capsys, *argv)[0] == 0  # a resumed run retries the failed cell only


def test_golden_report(capsys, tmp_path, regen_golden) -> None:
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "tiny_run", run)
    code, text, _ = _run(capsys, "--report-only", str(run))
    assert code == 0, text
    rendered = (run / "report.md").read_text()
    golden = GOLDEN / "report.md"
    if regen_golden:
        golden.write_text(rendered)
    assert rendered == golden.read_text(), "report changed: review it, then rerun with --regen-golden"
    # --report-only is reproducible: rendering again gives the same bytes
    assert _run(capsys, "--report-only", str(run))[0] == 0
    assert (run / "report.md").read_text() == rendered
    assert (run / "figures" / "tradeoff_natural.png").exists()


def test_results_schema_validator_rejects_bad_rows() -> None:
    good = {"kind": "accuracy", "dataset": "natural", "cipher": "plain", "classifier": "vit", "metric": "accuracy", "value": 0.5, "status": "ok"}
    validate_results(rows_frame([good]))
    for broken, message in (
        ({**good, "value": 1.5}, "accuracy values"),
        ({**good, "kind": "speed"}, "unknown kind"),
        ({**good, "value": None}, "must have a value"),
        ({**good, "classifier": ""}, "need a classifier"),
    ):
        with pytest.raises(ResultsSchemaError, match=message):
            validate_results(rows_frame([broken]))


def test_corrupt_results_file_gives_a_clear_error(capsys, tmp_path, tiny_config) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("this,is\nnot,results\n")
    code, _, err = _run(capsys, "--config", str(tiny_config), "--kinds", "key_space", "--out", str(out))
    assert code == 2 and "results.csv" in err and "--no-resume" in err


def test_mean_rows_cap_infinite_psnr_and_give_an_interval() -> None:
    import torch

    finite = bench._mean_row({}, "ssim", torch.tensor([0.2, 0.4, 0.6]))
    assert finite["value"] == pytest.approx(0.4) and finite["n"] == 3
    assert finite["ci95_low"] == pytest.approx(0.4 - 1.959963984540054 * 0.2 / math.sqrt(3))
    capped = bench._mean_row({}, "psnr", torch.tensor([20.0, float("inf")]))
    assert capped["value"] == pytest.approx(60.0) and "capped at 100" in capped["note"]
    assert math.isnan(capped["ci95_low"])
