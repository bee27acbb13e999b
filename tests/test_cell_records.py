"""Runner v2 storage: cells with an identity, one checksummed record per cell, results compiled
from the records, concurrent writers, shards and merging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.run import CellContext, Runner, cells, identity, plan
from harness.run.cli import main
from harness.run.config import resolve_config
from harness.results import ResultStore, decode_record

REPO_ROOT = Path(__file__).resolve().parents[1]

#: a 12-cell grid (3 accuracy cells, vit_keyed waiting for the plain vit, 9 security cells)
GRID_CONFIG = """\
n_train: 30
n_test: 30
n_attacker: 20
image_size: [16, 16]
known_pairs: 8
ciphertext_ladder: [10]
examples: 2
classifiers:
  vit: {epochs: 1, batch_size: 32, model_options: {size: nano, patch_size: 4}}
"""
GRID = ["--ciphers", "plain,proposed,le", "--classifiers", "vit,vit_keyed", "--attacks", "none,mean_colour,kpa",
        "--kinds", "accuracy,security", "--progress", "none"]
SORT = ["kind", "dataset", "cipher", "classifier", "attack", "metric", "n"]


def compiled(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv without timings, per_image.csv; both in a canonical order."""
    store = ResultStore(folder)
    rows = store.load().drop(columns=["elapsed_s"])
    rows = rows[~rows["metric"].str.endswith("_seconds")]
    rows = rows.sort_values(SORT).reset_index(drop=True)
    per_image = store.load_per_image().sort_values(["kind", "dataset", "cipher", "classifier", "attack", "metric", "image_id"])
    return rows, per_image.reset_index(drop=True)


def assert_same_rows(a: Path, b: Path) -> None:
    (rows_a, images_a), (rows_b, images_b) = compiled(a), compiled(b)
    pd.testing.assert_frame_equal(rows_a, rows_b)
    pd.testing.assert_frame_equal(images_a, images_b)


def grid_config(tmp_path: Path) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(GRID_CONFIG)
    return path


@pytest.fixture(scope="module")
def serial_grid(tmp_path_factory) -> tuple[Path, Path]:
    """The 12-cell grid run serially in-process: (its folder, its config file)."""
    folder = tmp_path_factory.mktemp("serial")
    config = grid_config(folder)
    assert main(["--config", str(config), *GRID, "--out", str(folder / "run"), "--in-process"], stdout=lambda line: None) == 0
    assert len(ResultStore(folder / "run").load()[["kind", "cipher", "classifier", "attack"]].drop_duplicates()) == 12
    return folder / "run", config


def cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "run_bench.py"), *argv], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{out}\n{err}"


# -- identity ---------------------------------------------------------------------------------
TINY = "n_train: 20\nn_test: 10\nn_attacker: 10\nimage_size: [16, 16]\nexamples: 2\nknown_pairs: 4\n"


def _counting(monkeypatch) -> list[plan.Cell]:
    """Replace the cells' computation by a cheap one that counts the cells it computes (and the
    report by a stub: these tests are about what is computed and stored)."""
    import reports.markdown

    computed: list[plan.Cell] = []
    monkeypatch.setattr(reports.markdown, "render_report", lambda folder: Path(folder) / "report.md")

    def compute(cell, ctx):
        computed.append(cell)
        return cells.CellOutput([{**ctx.row_base(cell), "status": "ok", "metric": "accuracy" if cell.kind == "accuracy" else "ssim", "value": 0.5}])

    monkeypatch.setattr(cells, "compute_cell", compute)
    return computed


def _tiny_argv(tmp_path: Path, *extra: str, config: str = TINY) -> list[str]:
    path = tmp_path / f"tiny{abs(hash(config))}.yaml"
    path.write_text(config)
    return ["--config", str(path), "--ciphers", "plain,proposed", "--classifiers", "resnet18", "--attacks", "none,puzzle",
            "--out", str(tmp_path / "run"), "--progress", "none", "--in-process", *extra]


def test_another_seed_recomputes_every_cell_and_its_rows_say_so(tmp_path, monkeypatch) -> None:
    computed = _counting(monkeypatch)
    quiet = {"stdout": lambda line: None}
    assert main(_tiny_argv(tmp_path), **quiet) == 0
    cells = len(computed)
    first = ResultStore(tmp_path / "run").load()
    assert cells == 2 + 1 + 4 and set(first["seed"]) == {0} and first["cell_hash"].str.len().eq(20).all()
    assert main(_tiny_argv(tmp_path, "--seed", "5"), **quiet) == 0
    assert len(computed) == 2 * cells  # nothing of seed 0 is reused for seed 5
    fifth = ResultStore(tmp_path / "run").load()
    assert len(fifth) == len(first) and set(fifth["seed"]) == {5}  # no seed-0 row is left in the compiled results
    assert not set(fifth["cell_hash"]) & set(first["cell_hash"])
    assert ResultStore(tmp_path / "run").read_run()["config"]["seed"] == 5
    assert set(ResultStore(tmp_path / "run").load_per_image()["cell_hash"]) <= set(fifth["cell_hash"])
    assert main(_tiny_argv(tmp_path, "--seed", "0"), **quiet) == 0
    assert len(computed) == 2 * cells  # seed 0's records were kept: switching back recomputes nothing
    assert set(ResultStore(tmp_path / "run").load()["seed"]) == {0}


@pytest.mark.parametrize(
    ("change", "recomputed"),
    [
        ("n_test: 12\n", {"key_space", "accuracy", "security"}),
        ("n_train: 24\n", {"accuracy", "security:puzzle"}),  # puzzle pools the victim's training ciphertexts
        ("n_attacker: 12\n", {"security"}),
        ("classifiers: {resnet18: {epochs: 3}}\n", {"accuracy"}),
        ("attacks: {puzzle: {batch_size: 8}}\n", {"security:puzzle"}),
        ("ciphers: {proposed: {block_size: 8}}\n", {"proposed"}),
        ("known_pairs: 3\n", {"security"}),
        ("ciphertext_ladder: [5]\n", {"security:puzzle"}),  # only a statistical attack is refitted along it
        ("verdict_margin: 0.1\n", set()),
        ("examples: 3\n", {"key_space", "security"}),
    ],
)
def test_a_changed_key_recomputes_just_the_cells_that_read_it(tmp_path, monkeypatch, change, recomputed) -> None:
    computed = _counting(monkeypatch)
    assert main(_tiny_argv(tmp_path), stdout=lambda line: None) == 0
    computed.clear()
    assert main(_tiny_argv(tmp_path, config=TINY + change), stdout=lambda line: None) == 0

    def selected(cell: plan.Cell) -> bool:
        return any(
            part == cell.kind or part == cell.cipher or part == f"{cell.kind}:{cell.attack}" for part in recomputed
        )

    planned = plan.plan_cells(resolve_config(None, tmp_path / f"tiny{abs(hash(TINY + change))}.yaml"),
                            plan.Selection(["plain", "proposed"], ["resnet18"], ["none", "puzzle"]))
    assert sorted(map(str, computed)) == sorted(str(c) for c in planned if selected(c))


def test_cell_inputs_are_what_the_cell_reads() -> None:
    config = resolve_config("quick")
    keyed = plan.Cell("accuracy", "natural", "proposed", classifier="vit_keyed")
    inputs = identity.cell_inputs(config, keyed)
    assert inputs["classifier"]["trained"] == "vit" and inputs["classifier"]["settings"] == config["classifiers"]["vit"]
    assert "data_dir" not in inputs and "examples" not in inputs and "attack" not in inputs
    assert inputs["splits"] == {"test": config["n_test"], "train": config["n_train"]}
    other = {**config, "data_dir": "/elsewhere", "pairings": {}, "verdict_margin": 0.5}
    assert identity.cell_inputs(other, keyed) == inputs  # keys the cell does not read
    cifar = plan.Cell("key_space", "cifar10", "le")
    assert identity.cell_inputs(other, cifar)["data_dir"] == "/elsewhere"
    none = identity.cell_inputs(config, plan.Cell("security", "natural", "le", attack="none"))
    assert set(none["splits"]) == {"test", "attacker"} and none["known_pairs"] == config["known_pairs"]


def test_code_version_covers_the_cells_own_modules_only() -> None:
    le, pe = plan.Cell("key_space", "natural", "le"), plan.Cell("key_space", "natural", "pe")
    assert identity.code_version(le)["sources"] != identity.code_version(pe)["sources"]  # their cipher modules differ
    assert identity.code_version(le)["scramblebench"] == identity.scramblebench_version()
    assert identity.code_version(plan.Cell("key_space", "cifar10", "le")) == identity.code_version(le)
    kpa = plan.Cell("security", "natural", "le", attack="kpa")
    fr = plan.Cell("security", "natural", "le", attack="fr")
    assert identity.code_version(kpa) != identity.code_version(fr)


# -- records ----------------------------------------------------------------------------------
def test_a_damaged_record_is_named_and_only_its_cell_recomputed(tmp_path, monkeypatch, capsys) -> None:
    computed = _counting(monkeypatch)
    argv = _tiny_argv(tmp_path)
    assert main(argv, stdout=lambda line: None) == 0
    before = compiled(tmp_path / "run")[0]
    records = sorted((tmp_path / "run" / "cells").glob("*.json"))
    assert len(records) == len(computed) == 7
    victim = records[3]
    data = bytearray(victim.read_bytes())
    at = data.index(b'"value":0.5') + len(b'"value":0.')
    data[at] = ord("7")  # one byte: still valid JSON, a different value
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        decode_record(victim.read_bytes())
    computed.clear()
    capsys.readouterr()
    assert main(argv, stdout=lambda line: None) == 0
    err = capsys.readouterr().err
    assert f"cell record {victim}" in err and "damaged" in err and "recomputed" in err
    assert len(computed) == 1 and Runner(CellContext(resolve_config(None, argv[1]), tmp_path / "run")).identity(computed[0]) == victim.stem
    assert victim.name in (tmp_path / "run" / "errors.log").read_text()
    pd.testing.assert_frame_equal(compiled(tmp_path / "run")[0], before)


def test_cut_results_and_half_written_records_never_count_as_finished(tmp_path, monkeypatch) -> None:
    computed = _counting(monkeypatch)
    argv = _tiny_argv(tmp_path)
    run = tmp_path / "run"
    assert main(argv, stdout=lambda line: None) == 0
    before = compiled(run)[0]
    # results.csv cut at a line boundary: finished-ness comes from the records, so nothing reruns and it is rebuilt whole
    lines = (run / "results.csv").read_text().splitlines(keepends=True)
    (run / "results.csv").write_text("".join(lines[:4]))
    computed.clear()
    assert main(argv, stdout=lambda line: None) == 0
    assert computed == []
    pd.testing.assert_frame_equal(compiled(run)[0], before)
    # a half-written record (a crash of a writer that did not write atomically) is damaged: its cell reruns
    record = sorted((run / "cells").glob("*.json"))[0]
    record.write_bytes(record.read_bytes()[: len(record.read_bytes()) // 2])
    code_lines: list[str] = []
    assert main([*argv, "--dry-run"], stdout=code_lines.append) == 0
    assert "6 already done" in code_lines[-1]
    assert main(argv, stdout=lambda line: None) == 0
    assert len(computed) == 1
    pd.testing.assert_frame_equal(compiled(run)[0], before)
    # a temp file of an interrupted atomic write is never read as a record
    (run / "cells" / f".{record.name}.abc.tmp").write_text('{"format": 1')
    computed.clear()
    assert main(argv, stdout=lambda line: None) == 0 and computed == []


def test_a_record_holds_rows_per_image_scores_and_examples_with_a_checksum(tmp_path) -> None:
    config = resolve_config("quick")
    config.update({"n_train": 20, "n_test": 10, "n_attacker": 10, "image_size": [16, 16], "examples": 2, "known_pairs": 4})
    runner = Runner(CellContext(config, tmp_path / "run"))
    cell = plan.Cell("security", "natural", "proposed", attack="none")
    rows = runner.run_cell(cell)
    path = runner.store.record_path(runner.identity(cell))
    document = json.loads(path.read_text())
    assert document["checksum"].startswith("sha256:") and document["format"] == 1
    record = decode_record(path.read_bytes())
    assert record["cell"]["attack"] == "none" and record["inputs"] == runner.inputs(cell)
    assert [r["metric"] for r in record["rows"]] == [r["metric"] for r in rows]
    assert set(record["per_image"]) == {"ssim", "psnr", "identified", "ssim_invariant", "psnr_invariant", "identified_invariant"} and len(record["per_image"]["ssim"]) == 10 - 4
    assert record["examples"][0]["name"] == "none" and record["code"] == identity.code_version(cell)
    images, _ = runner.store.load_examples(runner.store.example_path("natural", "proposed", "none"))
    assert images.shape[0] == 2


# -- concurrency, shards, merge --------------------------------------------------------------
def test_two_processes_into_one_folder_both_finish_and_both_cells_are_kept(tmp_path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    out = tmp_path / "run"
    argv = ["--config", str(config), "--kinds", "key_space,security", "--attacks", "none", "--out", str(out), "--progress", "none"]
    wait_all([cli(*argv, "--ciphers", "plain,le"), cli(*argv, "--ciphers", "proposed,pe")])
    frame = ResultStore(out).load()
    assert set(frame["cipher"]) == {"plain", "le", "proposed", "pe"}
    cells = frame[["kind", "cipher", "attack"]].drop_duplicates()
    assert len(cells) == 8 and len(list((out / "cells").glob("*.json"))) == 8
    assert not frame.duplicated(["kind", "cipher", "attack", "metric", "n"]).any()
    assert set(ResultStore(out).read_run()["key_spaces"]) == {"plain", "le", "proposed", "pe"}


def test_shards_split_the_grid_stably_and_keep_dependencies_together() -> None:
    config = resolve_config("quick")
    cells = plan.plan_cells(config, plan.Selection())
    shards = [plan.shard_cells(cells, i, 3) for i in (1, 2, 3)]
    assert sorted(map(str, sum(shards, []))) == sorted(map(str, cells)) and all(shards)
    for shard in shards:
        for cell in shard:
            needed = plan.dependency(cell)
            assert needed is None or needed in shard
    smaller = plan.plan_cells(config, plan.Selection(ciphers=["le", "proposed"]))
    assert plan.shard_cells(smaller, 2, 3) == [c for c in shards[1] if c in smaller]  # per cell, not per grid
    assert plan.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            plan.parse_shard(bad)


def test_two_concurrent_shard_processes_into_one_folder_give_the_serial_rows(tmp_path, serial_grid) -> None:
    serial, config = serial_grid
    out = tmp_path / "sharded"
    wait_all([cli("--config", str(config), *GRID, "--out", str(out), "--shard", f"{i}/2") for i in (1, 2)])
    assert_same_rows(serial, out)


def test_shard_folders_merge_into_the_serial_rows(tmp_path, serial_grid, capsys) -> None:
    serial, config = serial_grid
    quiet = {"stdout": lambda line: None}
    for i in (1, 2):
        assert main(["--config", str(config), *GRID, "--out", str(tmp_path / f"shard{i}"), "--shard", f"{i}/2", "--in-process"], **quiet) == 0
    parts = [compiled(tmp_path / f"shard{i}")[0] for i in (1, 2)]
    assert len(parts[0]) and len(parts[1])
    lines: list[str] = []
    assert main(["merge", str(tmp_path / "merged"), str(tmp_path / "shard1"), str(tmp_path / "shard2")], stdout=lines.append) == 0
    assert "12 cells" in lines[0] and (tmp_path / "merged" / "report.md").exists()
    assert_same_rows(serial, tmp_path / "merged")
    code = main(["merge", str(tmp_path / "merged2"), str(tmp_path / "missing")], **quiet)
    assert code == 2 and "not a run folder" in capsys.readouterr().err


def test_executor_ray_without_ray_is_a_one_line_user_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(_tiny_argv(tmp_path, "--executor", "ray"), stdout=lambda line: None)
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'scramblebench[ray]'" in err and err.count("\n") == 1
    assert main(_tiny_argv(tmp_path, "--address", "auto"), stdout=lambda line: None) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_workers_are_for_the_local_executor(tmp_path, capsys) -> None:
    assert main(_tiny_argv(tmp_path, "--executor", "ray", "--workers", "2"), stdout=lambda line: None) == 2
    assert "--workers is for --executor local" in capsys.readouterr().err


def test_a_killed_run_loses_no_finished_cell_and_the_rerun_completes_it(tmp_path, serial_grid) -> None:
    import signal
    import time

    serial, config = serial_grid
    out = tmp_path / "killed"
    process = cli("--config", str(config), *GRID, "--out", str(out))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and len(list((out / "cells").glob("*.json"))) < 2:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    store = ResultStore(out)
    before = {r["cell_hash"]: r["finished"] for r in store.scan_records()[0]}
    assert before and not store.scan_records()[1]  # whole records only, never a half-written one
    assert main(["--config", str(config), *GRID, "--out", str(out), "--in-process"], stdout=lambda line: None) == 0
    after = {r["cell_hash"]: r["finished"] for r in store.scan_records()[0]}
    assert len(after) == 12 and all(after[h] == finished for h, finished in before.items())  # none recomputed
    assert_same_rows(serial, out)


def test_provenance_records_scramblebench_s_own_commit_not_a_surrounding_repository(tmp_path) -> None:
    import subprocess

    from harness.run.provenance import git_commit

    assert len(git_commit()) == 40  # this checkout
    project = tmp_path / "user_project"
    installed = project / ".venv" / "lib" / "site-packages"
    installed.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    assert git_commit(installed) == "not a checkout (installed package)"


# -- one configuration per folder -------------------------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_shard_of_another_configuration_is_refused_in_the_folder(tmp_path, monkeypatch, capsys) -> None:
    """Issue 20: shards of different configurations in one --out are refused (exit 2, one line naming
    the key), so the compiled results never silently keep one configuration's cells."""
    computed = _counting(monkeypatch)
    quiet = {"stdout": lambda line: None}
    assert main(_tiny_argv(tmp_path, "--shard", "1/2"), **quiet) == 0
    before, done = _snapshot(tmp_path / "run"), len(computed)
    capsys.readouterr()
    assert main(_tiny_argv(tmp_path, "--shard", "2/2", "--seed", "5"), **quiet) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another configuration (seed is 0 there, 5 here)" in err, err
    assert len(computed) == done and _snapshot(tmp_path / "run") == before  # nothing computed, nothing written
    assert main(_tiny_argv(tmp_path, "--shard", "2/2", "--ciphers", "proposed"), **quiet) == 0  # another selection: fine


def test_a_run_of_another_configuration_is_refused_while_a_run_works_in_the_folder(tmp_path, monkeypatch, capsys) -> None:
    _counting(monkeypatch)
    assert main(_tiny_argv(tmp_path), stdout=lambda line: None) == 0
    store = ResultStore(tmp_path / "run")
    with store.active(store.read_run()):  # a run of seed 0 working there (a real flock, as another process holds it)
        capsys.readouterr()
        assert main(_tiny_argv(tmp_path, "--seed", "5"), stdout=lambda line: None) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "seed is 0 there, 5 here" in err and "another scramblebench run" in err
        assert main(_tiny_argv(tmp_path), stdout=lambda line: None) == 0  # the same configuration shares the folder
    assert main(_tiny_argv(tmp_path, "--seed", "5"), stdout=lambda line: None) == 0  # alone: the folder changes configuration
    assert store.read_run()["config"]["seed"] == 5


def test_merge_of_another_configuration_is_refused_and_changes_nothing(tmp_path, monkeypatch, capsys) -> None:
    _counting(monkeypatch)
    quiet = {"stdout": lambda line: None}
    for name, shard, config in (("a", "1/2", TINY), ("b", "2/2", TINY.replace("image_size: [16, 16]", "image_size: [24, 24]"))):
        assert main(_tiny_argv(tmp_path, "--shard", shard, "--out", str(tmp_path / name), config=config), **quiet) == 0
    assert main(["merge", str(tmp_path / "out"), str(tmp_path / "a")], **quiet) == 0
    before = _snapshot(tmp_path / "out")
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "out"), str(tmp_path / "b")], **quiet) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image_size is [16, 16] in" in err and "[24, 24] in" in err, err
    assert _snapshot(tmp_path / "out") == before
    assert main(["merge", str(tmp_path / "new"), str(tmp_path / "a"), str(tmp_path / "b")], **quiet) == 2
    assert not (tmp_path / "new").exists()
