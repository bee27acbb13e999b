"""The results store reads a run folder defensively and writes it privately (issue 20, items 5 and 9)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from harness import results
from harness.results import (
    DamagedRecordError,
    ResultsSchemaError,
    ResultStore,
    RunFolderError,
    encode_array,
)

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def _one_warning_line(capsys: pytest.CaptureFixture, pattern: str):
    """The block prints exactly one warning line matching ``pattern`` on stderr (no Python warning)."""
    capsys.readouterr()
    yield
    err = capsys.readouterr().err
    assert err.startswith("scramblebench: warning: ") and err.count("\n") == 1 and re.search(pattern, err), err


def _record(index: int, rows: int = 3) -> dict:
    cell = {"kind": "security", "dataset": "natural", "cipher": f"c{index}", "classifier": "", "attack": "none", "key_condition": ""}
    images = np.full((2, 3, 4, 4), index, dtype=np.uint8)
    return {
        "cell_hash": f"{index:016x}",
        "cell": cell,
        "status": "ok",
        "finished": f"2026-01-01T00:00:{index:02d}",
        "inputs": {},
        "rows": [{**cell, "metric": f"m{r}", "value": float(r), "status": "ok", "note": "", "seed": 0} for r in range(rows)],
        "per_image": {"ssim": [0.1 * index, 0.2]},
        "examples": [{"name": "encrypted", "images": encode_array(images), "ssim": [0.5, 0.25]}],
    }


def _run_folder(folder: Path, cells: int = 4) -> ResultStore:
    store = ResultStore(folder)
    records = [_record(i) for i in range(cells)]
    for record in records:
        store.write_record(record)
    store.write_compiled(records)
    store.write_run({"config": {"datasets": ["natural"], "ciphers": [r["cell"]["cipher"] for r in records]}, "key_spaces": {}})
    return store


def test_one_exception_type_for_every_run_folder_problem() -> None:
    assert issubclass(RunFolderError, ValueError)
    assert issubclass(ResultsSchemaError, RunFolderError) and issubclass(DamagedRecordError, RunFolderError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", r"run\.json holds a JSON array, not an object"),
        ('"text"', r"run\.json holds a JSON string, not an object"),
        ("{}", r"run\.json: 'config' must be a JSON object, it is missing"),
        ('{"config": []}', r"run\.json: 'config' must be a JSON object, got a JSON array"),
        ('{"config": {"ciphers": []}}', r"run\.json: config 'datasets' must be a JSON array, it is missing"),
        ('{"config": {"datasets": "natural", "ciphers": []}}', r"config 'datasets' must be a JSON array, got a JSON string"),
        ('{"config": {', r"run\.json is not valid JSON"),
    ],
)
def test_run_json_that_is_not_a_run_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    store = _run_folder(tmp_path / "run")
    store.run_path.write_text(content)
    with pytest.raises(RunFolderError, match=message) as caught:
        store.read_run()
    assert "\n" not in str(caught.value) and "rerun" in str(caught.value)


def test_a_truncated_example_file_is_rebuilt_from_its_record(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = _run_folder(tmp_path / "run")
    path = store.example_path("natural", "c2", "encrypted")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with _one_warning_line(capsys, r"c2__encrypted\.npz was damaged"):
        images, ssim = store.load_examples(path)
    assert images.shape == (2, 3, 4, 4) and (images == 2).all() and ssim.tolist() == [0.5, 0.25]
    assert ResultStore(tmp_path / "run").load_examples(path)[0].shape == (2, 3, 4, 4)  # written back whole
    assert store.notes and "rebuilt from cell record" in store.notes[0]


def test_a_damaged_example_file_no_record_holds_is_one_clear_error(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run")
    path = store.example_path("natural", "c1", "encrypted")
    for record in store.cells_dir.glob("*.json"):
        record.unlink()
    for damage in (path.read_bytes()[:40], b"", b"PK\x03\x04 not really a zip"):
        path.write_bytes(damage)
        with pytest.raises(RunFolderError, match=r"c1__encrypted\.npz is damaged .* delete it and rerun"):
            store.load_examples(path)


@pytest.mark.parametrize("cut", ["last_cell", "mid_cell", "header_only", "missing", "mid_line"])
def test_results_csv_cut_at_a_line_boundary_is_recompiled_from_the_records(tmp_path: Path, cut: str, capsys: pytest.CaptureFixture) -> None:
    store = _run_folder(tmp_path / "run", cells=4)
    whole = store.load()
    lines = store.results_path.read_text().splitlines(keepends=True)
    keep = {"last_cell": len(lines) - 3, "mid_cell": len(lines) - 2, "header_only": 1}.get(cut, 0)
    if cut == "missing":
        store.results_path.unlink()
    elif cut == "mid_line":
        text = store.results_path.read_text()
        store.results_path.write_text(text[: len(text) - len(lines[-1]) // 2])
    else:
        store.results_path.write_text("".join(lines[:keep]))
    fresh = ResultStore(tmp_path / "run")
    with _one_warning_line(capsys, r"results\.csv disagreed with the 4 record\(s\)"):
        frame = fresh.load()
    assert len(frame) == len(whole) == 12
    assert frame.drop(columns=["elapsed_s"]).equals(whole.drop(columns=["elapsed_s"]))
    assert store.results_path.read_text().count("\n") == len(lines)  # written back
    assert len(ResultStore(tmp_path / "run").load()) == 12  # and now it agrees: no warning needed


def test_per_image_csv_cut_is_recompiled_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = _run_folder(tmp_path / "run", cells=3)
    lines = store.per_image_path.read_text().splitlines(keepends=True)
    store.per_image_path.write_text("".join(lines[:-2]))
    with _one_warning_line(capsys, r"per_image\.csv disagreed"):
        assert len(ResultStore(tmp_path / "run").load_per_image()) == 6


def test_disagreement_whose_record_is_gone_says_so(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run", cells=3)
    lines = store.results_path.read_text().splitlines(keepends=True)
    store.results_path.write_text("".join(lines[:-3]))
    store.record_path(_record(2)["cell_hash"]).unlink()
    with pytest.raises(RunFolderError, match=r"results\.csv disagrees with the records .* rerun the run"):
        ResultStore(tmp_path / "run").load()


def test_an_unwritable_folder_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    store = _run_folder(tmp_path / "run", cells=2)

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(results, "atomic_write_bytes", refuse)
    fresh = ResultStore(tmp_path / "run")
    with pytest.raises(RunFolderError, match=r"cannot write .*report\.md \(permission denied\): make the run folder .* writable"):
        fresh.write_bytes("report.md", b"# report")
    with pytest.raises(RunFolderError, match="permission denied"):
        fresh.write_run({"config": {}})
    # reading still works, and a cut results.csv is recompiled in memory
    lines = store.results_path.read_text().splitlines(keepends=True)
    store.results_path.write_text("".join(lines[:2]))
    with _one_warning_line(capsys, "in memory only"):
        assert len(fresh.load()) == 6


@pytest.mark.skipif(ROOT, reason="root writes into mode-0555 folders: chmod cannot make a folder read-only for root")
def test_a_read_only_folder_is_one_clear_error(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run", cells=2)
    (tmp_path / "run").chmod(0o500)
    try:
        with pytest.raises(RunFolderError, match="not writable"):
            ResultStore(tmp_path / "run").check_writable()
        with pytest.raises(RunFolderError, match="permission denied"):
            ResultStore(tmp_path / "run").write_bytes("report.md", b"x")
        assert len(ResultStore(tmp_path / "run").load()) == 6
    finally:
        (tmp_path / "run").chmod(0o700)
    assert store.run_path.exists()


def test_check_writable_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    store = _run_folder(tmp_path / "run", cells=1)
    store.check_writable()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(RunFolderError, match=r"run folder .*run is not writable \(permission denied\)"):
        ResultStore(tmp_path / "run").check_writable()


def _modes(folder: Path) -> dict[str, int]:
    modes = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        modes[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def test_everything_the_store_writes_is_private_even_in_an_existing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "existing"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    old = os.umask(0o022)
    try:
        store = _run_folder(folder, cells=2)
        store.write_marker()
        with store.lock():
            pass
    finally:
        os.umask(old)
    modes = _modes(folder)
    assert {"cells", "examples", "examples/natural", "results.csv", "per_image.csv", "run.json", ".scramblebench-run", ".scramblebench-lock"} <= set(modes)
    for name, mode in modes.items():
        expected = 0o700 if (folder / name).is_dir() else 0o600
        assert mode == expected, f"{name}: {oct(mode)}"


def test_make_private_covers_files_others_wrote(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run", cells=1)
    figures = store.folder / "figures"
    figures.mkdir(mode=0o755)
    figures.chmod(0o755)
    (figures / "examples_natural.png").write_bytes(b"png")
    (figures / "examples_natural.png").chmod(0o644)
    (store.folder / "link").symlink_to(tmp_path)  # never followed
    store.make_private()
    modes = _modes(store.folder)
    assert modes["figures"] == 0o700 and modes["figures/examples_natural.png"] == 0o600
    assert all(mode in (0o700, 0o600) for name, mode in modes.items() if name != "link")


def test_compiled_index_is_not_taken_for_a_record(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run", cells=2)
    assert store.compiled_index_path.exists()
    good, damaged = store.scan_records()
    assert len(good) == 2 and not damaged
    assert json.loads(store.compiled_index_path.read_text())["cells"][0][1:] == [3, 2]


def test_private_takes_permissions_away_and_never_gives_them(tmp_path: Path) -> None:
    store = _run_folder(tmp_path / "run", cells=1)
    examples = store.folder / "examples"
    examples.chmod(0o755)
    (store.folder / "notes.txt").write_text("mine")
    (store.folder / "notes.txt").chmod(0o444)
    store.make_private()
    assert stat.S_IMODE((store.folder / "notes.txt").stat().st_mode) == 0o400  # read-only stays read-only
    assert stat.S_IMODE(examples.stat().st_mode) == 0o700
    examples.chmod(0o755)
    ResultStore(store.folder).save_examples(store.example_path("natural", "c0", "plain"), np.zeros((1, 3, 4, 4), np.uint8))
    assert stat.S_IMODE(examples.stat().st_mode) == 0o700  # an existing subfolder written into is made private too


def test_a_rendered_report_leaves_no_file_readable_by_others(tmp_path) -> None:
    """Issue 20 item 9: the report's figures and tables are private like the records (0600 / 0700)."""
    import shutil
    import stat

    from reports.markdown import render_report

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "golden" / "tiny_run", run)
    for path in [run, *run.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    render_report(run)
    for path in [run, *run.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_no_resume_from_another_process_is_refused_while_a_run_works(tmp_path, capsys) -> None:
    """Issue 20 item 2: a --no-resume clear takes the folder's locks and never wipes a working run's records."""
    from harness.run.cli import main

    out = tmp_path / "run"
    argv = ["--ciphers", "plain", "--kinds", "key_space", "--out", str(out), "--progress", "none", "--in-process"]
    config = tmp_path / "tiny.yaml"
    config.write_text("n_train: 20\nn_test: 10\nn_attacker: 10\nimage_size: [16, 16]\n")
    assert main(["--config", str(config), *argv], stdout=lambda line: None) == 0
    records = sorted((out / "cells").glob("*.json"))
    store = results.ResultStore(out)
    with store.active():  # another run working in the folder (a real flock, as another process holds it)
        code = main(["--config", str(config), "--no-resume", *argv], stdout=lambda line: None)
        err = capsys.readouterr().err
        assert code == 2 and "another scramblebench run is working" in err and err.count("\n") == 1
        assert sorted((out / "cells").glob("*.json")) == records
    assert main(["--config", str(config), "--no-resume", *argv], stdout=lambda line: None) == 0


def _tiny_key_space_run(tmp_path: Path, out: Path, ciphers: str, *extra: str) -> None:
    from harness.run.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text("n_train: 20\nn_test: 10\nn_attacker: 10\nimage_size: [16, 16]\n")
    argv = ["--config", str(config), "--ciphers", ciphers, "--kinds", "key_space", "--out", str(out), "--progress", "none", "--in-process"]
    assert main([*argv, *extra], stdout=lambda line: None) == 0


def test_a_clear_keeps_the_lock_file_every_process_waits_on(tmp_path) -> None:
    """A --no-resume clear must not delete the file the folder's lock is taken on: a process waiting
    on the old file and one opening a new file would both hold "the" lock."""
    out = tmp_path / "run"
    _tiny_key_space_run(tmp_path, out, "plain")
    lock = out / results.LOCK_FILE
    inode = lock.stat().st_ino
    _tiny_key_space_run(tmp_path, out, "plain", "--no-resume")
    assert lock.stat().st_ino == inode and list((out / "cells").glob("*.json"))


def _blocked_on_a_lock(pid: int) -> bool:
    """Whether process ``pid`` waits for a flock (a ``->`` line of /proc/locks)."""
    return any(len(f) > 5 and f[1] == "->" and f[5] == str(pid) for f in map(str.split, Path("/proc/locks").read_text().splitlines()))


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_merge_copies_nothing_while_another_process_holds_the_folders_lock(tmp_path) -> None:
    """Issue 20 item 2 with real processes: merge takes OUT's lock before it copies a record (a compile
    or a clear in progress finishes first), then completes."""
    import subprocess
    import sys
    import time

    _tiny_key_space_run(tmp_path, tmp_path / "a", "plain")
    _tiny_key_space_run(tmp_path, tmp_path / "b", "proposed")
    out = tmp_path / "out"
    from harness.run.cli import main

    assert main(["merge", str(out), str(tmp_path / "a")], stdout=lambda line: None) == 0
    theirs = {p.name for p in (tmp_path / "b" / "cells").glob("*.json")}
    with ResultStore(out).lock():  # a compile in another process
        merge = subprocess.Popen([sys.executable, "run_bench.py", "merge", str(out), str(tmp_path / "b")], cwd=Path(__file__).parents[1],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while merge.poll() is None and not _blocked_on_a_lock(merge.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert merge.poll() is None and _blocked_on_a_lock(merge.pid)
        assert not theirs & {p.name for p in (out / "cells").glob("*.json")}  # nothing copied under another's lock
    _, err = merge.communicate(timeout=120)
    assert merge.returncode == 0, err
    assert theirs <= {p.name for p in (out / "cells").glob("*.json")}
