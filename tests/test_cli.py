"""run_bench.py in-process: usage errors, dry run, resume after an interruption, golden report."""

from __future__ import annotations

import math
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.run import cells, identity, plan
from harness.run.cli import main
from harness.results import LOCK_FILE, MARKER_FILE, ResultStore, ResultsSchemaError, rows_frame, validate_results

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


#: libraries ``list`` must not import: they cost seconds and listing needs none of them
HEAVY = ("torch", "timm", "torchvision", "matplotlib", "pandas", "numpy", "scipy", "ray")


def test_list_imports_no_heavy_library_and_is_fast(capsys) -> None:
    repo = Path(__file__).resolve().parents[1]
    code = (
        "import sys\nfrom harness.run.cli import main\nassert main(['list']) == 0\n"
        f"print('loaded:', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    started = time.perf_counter()
    listed = subprocess.run([sys.executable, "run_bench.py", "list"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - started < 10  # about 0.4 s alone; a generous bound on a shared machine
    assert listed.stdout.rstrip("\n") == _run(capsys, "list")[1]


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
    assert "| proposed" in report and "figures/examples_natural_proposed.png" in report  # Fig. 4, one per cipher
    assert (out / "figures" / "examples_natural_proposed.png").stat().st_size > 1000
    run = ResultStore(out).read_run()
    assert run["key_spaces"]["proposed"]["nominal"] == str(math.factorial(16) * math.factorial(4))
    assert run["config"]["n_train"] == 20 and run["git_commit"]
    assert "block_perm" not in (out / "run.json").read_text()


def _fake_rows(cell: plan.Cell, ctx: cells.CellContext) -> cells.CellOutput:
    return cells.CellOutput([{**ctx.row_base(cell), "status": "ok", "metric": "key_space_log2", "value": 1.0}])


def test_interrupted_run_resumes_without_recomputing(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    out, calls, interrupt_after = tmp_path / "run", [], 1

    def interrupted(cell, ctx):
        if len(calls) == interrupt_after:
            raise KeyboardInterrupt
        calls.append(cell.id)
        return _fake_rows(cell, ctx)

    argv = ["--config", str(tiny_config), "--ciphers", "plain,proposed", "--kinds", "key_space", "--out", str(out), "--progress", "none",
            "--in-process"]
    monkeypatch.setattr(cells, "compute_cell", interrupted)
    code, _, err = _run(capsys, *argv)  # Ctrl-C (and SIGTERM): exit 130, one line, no traceback
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert len(ResultStore(out).load()) == 1  # the finished cell was stored before the interruption

    resumed: list = []
    monkeypatch.setattr(cells, "compute_cell", lambda cell, ctx: resumed.append(cell.id) or _fake_rows(cell, ctx))
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

    def flaky(cell, ctx):
        if cell.cipher == "proposed":
            raise RuntimeError("simulated failure")
        return _fake_rows(cell, ctx)

    monkeypatch.setattr(cells, "compute_cell", flaky)
    argv = ["--config", str(tiny_config), "--ciphers", "plain,proposed", "--kinds", "key_space", "--out", str(out), "--progress", "none",
            "--in-process"]
    code, text, _ = _run(capsys, *argv)
    assert code == 1 and "1 failed" in text
    report = (out / "report.md").read_text()
    assert "## Failed cells" in report and "RuntimeError: simulated failure" in report
    assert "simulated failure" in (out / "errors.log").read_text()
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
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
    # the golden run stores no example images, so it has no Fig. 4 (tests/test_report_figures.py draws those)
    for figure in ("ssim_boxplots_natural.png", "ciphertext_curves_natural.png"):
        assert (run / "figures" / figure).stat().st_size > 1000, figure
    latex, html = (run / "tables.tex").read_text(), (run / "tables.html").read_text()
    assert latex.count("\\begin{table") >= 4  # Table I, verdicts, SSIM, identification (tests/test_report_tables.py has more)
    assert "$\\times$" in latex and "✗" not in latex and "✓" not in latex  # symbols mapped to plain LaTeX
    assert html.count("<table ") == latex.count("\\begin{table") and "Security verdicts on natural" in html


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

    from harness.run.security_rows import mean_row

    finite = mean_row({}, "ssim", torch.tensor([0.2, 0.4, 0.6]))
    assert finite["value"] == pytest.approx(0.4) and finite["n"] == 3
    assert finite["ci95_low"] == pytest.approx(0.4 - 1.959963984540054 * 0.2 / math.sqrt(3))
    capped = mean_row({}, "psnr", torch.tensor([20.0, float("inf")]))
    assert capped["value"] == pytest.approx(60.0) and "capped at 100" in capped["note"]
    assert math.isnan(capped["ci95_low"])


# -- Runner v2: user errors, the run-folder marker, subcommands ----------------------------------
def _one_line_error(err: str) -> None:
    assert err.startswith("scramblebench: error: ") and err.count("\n") == 1 and "Traceback" not in err


def _key_space_argv(config: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(config), "--ciphers", "plain,proposed", "--kinds", "key_space", "--out", str(out), "--progress", "none",
            "--in-process", *extra]


@pytest.mark.parametrize("argv", [["--seed", "-1"], ["--seed", str(2**63)], ["--seed", "x"], ["--preset", "huge"], ["--bogus"]])
def test_argument_errors_are_one_line(capsys, tmp_path, argv) -> None:
    code, _, err = _run(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2
    _one_line_error(err)
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_is_a_user_error(capsys, tmp_path, tiny_config) -> None:
    target = tmp_path / "results.txt"
    target.write_text("mine")
    for extra in ([], ["--dry-run"]):
        code, _, err = _run(capsys, *_key_space_argv(tiny_config, target, *extra))
        assert code == 2 and "is a file, not a folder" in err
        _one_line_error(err)
    assert target.read_text() == "mine"


def test_out_that_cannot_be_created_is_a_user_error(capsys, tmp_path, tiny_config) -> None:
    parent = tmp_path / "a_file"
    parent.write_text("x")  # works as root too: nothing can be created under a regular file
    code, _, err = _run(capsys, *_key_space_argv(tiny_config, parent / "run"))
    assert code == 2 and "cannot create the run folder" in err
    _one_line_error(err)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_out_is_a_user_error(capsys, tmp_path, tiny_config) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _run(capsys, *_key_space_argv(tiny_config, locked / "run"))
        assert code == 2 and "cannot create the run folder" in err
        code, _, err = _run(capsys, *_key_space_argv(tiny_config, locked))
        assert code == 2 and "not writable" in err
    finally:
        locked.chmod(0o700)


def test_run_folder_is_owner_only_and_marked(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
    out = tmp_path / "new" / "run"
    assert _run(capsys, *_key_space_argv(tiny_config, out))[0] == 0
    assert (out / MARKER_FILE).is_file()
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def _repo_like(tmp_path: Path) -> tuple[Path, list[Path]]:
    repo = tmp_path / "repo"
    (repo / "examples" / "channel_swap_plugin").mkdir(parents=True)
    (repo / "examples" / "channel_swap_plugin" / "plugin.py").write_text("# mine\n")
    (repo / "README.md").write_text("# mine\n")
    return repo, sorted(repo.rglob("*"))


def test_no_resume_in_a_folder_the_runner_did_not_make_deletes_nothing(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
    repo, before = _repo_like(tmp_path)
    code, _, err = _run(capsys, *_key_space_argv(tiny_config, repo, "--no-resume"))
    assert code == 2 and "--no-resume refuses to clear" in err and MARKER_FILE in err
    _one_line_error(err)
    assert sorted(repo.rglob("*")) == before
    # resuming into it is refused too: the runner writes only into folders it made
    code, _, err = _run(capsys, *_key_space_argv(tiny_config, repo))
    assert code == 2 and "not a scramblebench run folder" in err
    assert sorted(repo.rglob("*")) == before


def test_no_resume_clears_only_the_runners_own_files(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
    out = tmp_path / "run"
    assert _run(capsys, *_key_space_argv(tiny_config, out))[0] == 0
    (out / "notes.txt").write_text("mine")
    (out / "cache").mkdir(exist_ok=True)
    (out / "cache" / "model.pt").write_text("cached")
    (out / "errors.log").write_text("old")
    (out / "examples").mkdir(exist_ok=True)
    (out / "examples" / "stale.npz").write_text("old")
    assert ResultStore(out).clear_run_files()  # what --no-resume calls, on a marked folder
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER_FILE, LOCK_FILE, "notes.txt", "cache"])  # the lock file stays
    assert (out / "cache" / "model.pt").read_text() == "cached"
    assert _run(capsys, *_key_space_argv(tiny_config, out, "--no-resume"))[0] == 0
    assert (out / "notes.txt").read_text() == "mine" and len(ResultStore(out).load()) == 2
    with pytest.raises(ResultsSchemaError, match="no .scramblebench-run marker"):
        ResultStore(tmp_path).clear_run_files()


def test_an_older_run_folder_without_marker_is_adopted_on_resume(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
    out = tmp_path / "run"
    assert _run(capsys, *_key_space_argv(tiny_config, out))[0] == 0
    (out / MARKER_FILE).unlink()
    assert _run(capsys, *_key_space_argv(tiny_config, out, "--no-resume"))[0] == 2
    assert _run(capsys, *_key_space_argv(tiny_config, out))[0] == 0 and (out / MARKER_FILE).is_file()


def test_subcommands_and_their_aliases(capsys, tmp_path, tiny_config, monkeypatch) -> None:
    out = tmp_path / "run"
    select = ["--config", str(tiny_config), "--ciphers", "plain,pro*", "--out", str(out)]
    code, listing, _ = _run(capsys, "plan", *select)
    assert code == 0 and "to do  key_space: natural / proposed / key space" in listing
    assert _run(capsys, "run", *select, "--dry-run")[1] == listing == _run(capsys, *select, "--dry-run")[1]
    assert not out.exists()
    code, text, _ = _run(capsys, "validate", "--config", str(tiny_config))
    assert code == 0 and not out.exists()
    from harness.run.config import resolve_config

    assert yaml.safe_load(text) == resolve_config(None, tiny_config)
    assert _run(capsys, "list")[1] == _run(capsys, "--list")[1]
    monkeypatch.setattr(cells, "compute_cell", _fake_rows)
    assert _run(capsys, *_key_space_argv(tiny_config, out))[0] == 0  # no command: run
    assert _run(capsys, "report", str(out))[1] == _run(capsys, "--report-only", str(out))[1] == f"report: {out / 'report.md'}"
    code, _, err = _run(capsys, "report", str(tmp_path / "missing"))
    assert code == 2
    _one_line_error(err)


def test_version_and_prog_name(capsys) -> None:
    from importlib import metadata

    from harness.run.identity import scramblebench_version as version
    from harness.run.arguments import build_parser

    assert main(["--version"]) == 0
    printed = capsys.readouterr().out.strip()
    try:
        expected = metadata.version("scramblebench")
    except metadata.PackageNotFoundError:
        expected = "0.1.0"
    assert printed == f"scramblebench {expected}" == f"scramblebench {version()}"
    assert build_parser().prog == "scramblebench"
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: scramblebench")
    assert main(["run", "--help"]) == 0
    assert "--no-resume" in capsys.readouterr().out


def test_version_falls_back_to_pyproject(monkeypatch) -> None:
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(identity.metadata, "version", missing)
    import tomllib

    assert identity.scramblebench_version() == tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]


def test_the_default_grid_runs_the_configured_ciphers_and_plugins_and_named_ones_on_request() -> None:
    from harness.run import Selection, plan_cells, resolve_config

    config = resolve_config("quick")
    default = {cell.cipher for cell in plan_cells(config, Selection(kinds=("key_space",)))}
    assert default == set(config["ciphers"])  # the seed's ciphers and plain: the 5-minute grid
    named = {cell.cipher for cell in plan_cells(config, Selection(ciphers=["cfe*", "ak_flip"], kinds=("key_space",)))}
    assert named == {"cfe_v1", "cfe_v2", "ak_flip"}


def _photos_with_a_truncated_one(root: Path) -> Path:
    import cv2

    from tests.photos import other_photographs

    root.mkdir()
    for index, photo in enumerate(other_photographs(8, size=24, seed=2).permute(0, 2, 3, 1).numpy()):
        cv2.imwrite(str(root / f"{index}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    whole = (root / "0.png").read_bytes()
    (root / "cut.png").write_bytes(whole[: len(whole) // 2])
    return root / "cut.png"


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["run"]])
def test_strict_refuses_an_unusable_image_file_with_one_line(capsys, tmp_path, tiny_config, command) -> None:
    cut = _photos_with_a_truncated_one(tmp_path / "photos")
    out = tmp_path / "run"
    folder = [] if command == ["validate"] else ["--out", str(out)]
    code, _, err = _run(capsys, *command, "--images", str(tmp_path / "photos"), "--config", str(tiny_config), "--strict", *folder)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("scramblebench: error: ") and f"{cut}: is truncated" in err
    assert not out.exists()


def test_without_strict_an_unusable_image_file_is_one_warning_line(capsys, tmp_path, tiny_config) -> None:
    cut = _photos_with_a_truncated_one(tmp_path / "photos")
    out = tmp_path / "run"
    code, _, err = _run(capsys, "--images", str(tmp_path / "photos"), "--config", str(tiny_config), "--ciphers", "plain",
                        "--kinds", "key_space", "--out", str(out), "--progress", "none", "--in-process")
    assert code == 0, err
    assert err.splitlines() == [f"scramblebench: warning: skipping {cut}: is truncated (a PNG without its IEND chunk)"]
    assert f"skipping {cut}" in (out / "errors.log").read_text()


@pytest.mark.parametrize("resume", [[], ["--no-resume"]])
def test_plan_refuses_the_folder_run_would_refuse(capsys, tmp_path, tiny_config, resume) -> None:
    """Every subcommand exits 2 with one line on a wrong folder: plan says what run would say."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a run")
    expected = "scramblebench did not make it" if resume else "not a scramblebench run folder"
    for command in (["plan"], ["run", "--in-process"]):
        code, _, err = _run(capsys, *command, "--config", str(tiny_config), "--kinds", "key_space", "--out", str(folder), *resume)
        assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
