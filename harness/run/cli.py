"""Command line of ``scramblebench`` / ``run_bench.py``: parse, resolve the config, run, report.

Subcommands: ``run`` (the default when none is given), ``plan`` (the grid, nothing run),
``report DIR``, ``merge OUT SHARD...`` (combine run folders' cell records), ``list`` and
``validate`` (print the resolved, checked config as YAML).  The old
flags ``--dry-run``, ``--report-only DIR`` and ``--list`` still work as aliases.

Exit codes: 0 when every cell succeeded, 1 when any cell failed (the report still shows it),
2 for user errors (one line on stderr: ``scramblebench: error: ...``, no traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import torch

from harness.run.cells import CellContext
from harness.run.executors import make_executor
from harness.run.identity import scramblebench_version
from harness.run.plan import Cell, Selection, parse_shard, plan_cells, shard_cells
from harness.run.progress_display import ProgressDisplay
from harness.run.provenance import now, run_metadata
from harness.run.runner import Runner
from harness.run.config import PRESETS, ConfigError, resolve_config
from harness.registry import attacks, ciphers, classifiers
from harness.results import KINDS as CELL_KINDS
from harness.results import ResultsSchemaError, ResultStore

PROG = "scramblebench"


class UsageError(Exception):
    """A user error: printed as one line, ``scramblebench: error: ...``, with exit code 2."""


def _patterns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise UsageError("an empty list was given; use comma-separated names or fnmatch patterns")
    return patterns


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is a one-line :class:`UsageError` instead of usage + exit."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _config_flags() -> argparse.ArgumentParser:
    flags = _Parser(add_help=False)
    group = flags.add_argument_group("configuration (preset < --config file < flags)")
    group.add_argument(
        "--preset", choices=sorted(PRESETS), default=None,
        help="protocol preset (default: the config file's 'preset' key, else quick)",
    )
    group.add_argument("--config", metavar="FILE.yaml", help="YAML file overriding preset keys (docs/benchmark.md)")
    group.add_argument("--dataset", help="comma list of datasets: natural, cifar10, cifar100, folder, images")
    group.add_argument("--data-dir", help="folder holding CIFAR pickles or a folder dataset")
    group.add_argument(
        "--images", metavar="DIR",
        help="your own photographs, any folder of images, no labels: the same as --dataset images --data-dir DIR "
        "(key-space and security cells; accuracy cells need labels)",
    )
    group.add_argument("--seed", type=int, help="master seed, 0 to 2**63 - 1 (keys, data, training and attacks derive from it)")
    select = flags.add_argument_group("selection")
    select.add_argument("--ciphers", help="comma list of cipher names or fnmatch patterns (default: all registered)")
    select.add_argument("--classifiers", help="comma list of classifier names or patterns (default: all)")
    select.add_argument("--attacks", help="comma list of attack names or patterns (default: all)")
    select.add_argument("--kinds", help="comma list of cell kinds to run: key_space, accuracy, security (default: all)")
    select.add_argument(
        "--shard", metavar="I/N",
        help="only the cells of shard I of N (1-based: 1/N ... N/N; a stable split by cell, vit_keyed with its plain vit), "
        "e.g. one per Slurm array task; shards may share one --out or be merged with 'merge'",
    )
    return flags


def _folder_flags() -> argparse.ArgumentParser:
    flags = _Parser(add_help=False)
    flags.add_argument("--out", default=None, help="run folder (default: runs/<preset>)")
    resume = flags.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True, help="skip finished cells (default)")
    resume.add_argument(
        "--no-resume", dest="resume", action="store_false",
        help="discard earlier results in --out (only in a folder scramblebench made: it holds a .scramblebench-run marker)",
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Run the scramblebench comparison grid (accuracy and attacks for every cipher) and write a report.",
        epilog="'run' is the default command: 'scramblebench --ciphers le' is 'scramblebench run --ciphers le'. "
        "'scramblebench COMMAND --help' lists a command's flags. Exit status: 0 all cells ok, 1 a cell failed, 2 user error.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {scramblebench_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    config, folder = _config_flags(), _folder_flags()
    run = commands.add_parser("run", parents=[config, folder], help="run the missing cells and write the report (default)")
    run.add_argument("--device", default="auto", help="auto (default: cuda when available), cpu, cuda or cuda:N")
    run.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for the run (default 1: the small networks of the quick preset train "
        "fastest single-threaded on 2 cores; 0 keeps torch's default)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="cells run at once, each in its own process with --threads threads (default 1: serial; "
        "`make bench` uses 2 on a 2-core machine)",
    )
    run.add_argument(
        "--executor", choices=["local", "ray"], default="local",
        help="local: this machine, serial or --workers processes (default); ray: one Ray task per cell "
        "(needs the 'ray' extra: pip install 'scramblebench[ray]')",
    )
    run.add_argument(
        "--address", default=None,
        help="with --executor ray: the Ray cluster to join (e.g. 'auto' or ray://host:10001; default: start a local Ray instance)",
    )
    run.add_argument("--refresh-cache", action="store_true", help="retrain cached models instead of loading them")
    run.add_argument(
        "--progress", choices=["auto", "bar", "plain", "none"], default="auto",
        help="auto (default): a bar on a terminal, else one line per finished cell with its time and a heartbeat "
        "line at most every --heartbeat seconds for long cells (Slurm logs stay readable)",
    )
    run.add_argument("--heartbeat", type=float, default=60.0, help="seconds between progress lines of a long cell in plain mode (default 60)")
    legacy = run.add_argument_group("aliases of other commands (kept for old scripts)")
    legacy.add_argument("--dry-run", action="store_true", help="same as 'plan'")
    legacy.add_argument("--report-only", metavar="DIR", help="same as 'report DIR'")
    legacy.add_argument("--list", action="store_true", help="same as 'list'")
    commands.add_parser("plan", parents=[config, folder], help="print the grid and what is already done in --out; run nothing")
    report = commands.add_parser("report", help="re-render the report of an existing run folder")
    report.add_argument("dir", metavar="DIR", help="run folder holding results.csv and run.json")
    merge = commands.add_parser(
        "merge", help="copy the cell records of shard run folders into OUT, compile its results and render its report"
    )
    merge.add_argument("out", metavar="OUT", help="run folder to merge into (created if missing)")
    merge.add_argument("shards", metavar="SHARD", nargs="*", help="run folders whose cells/ records to copy (none: just recompile OUT)")
    commands.add_parser("list", help="list registered plugins with their origin")
    commands.add_parser(
        "validate", parents=[config], help="resolve and check the configuration, print it as YAML, run nothing"
    )
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """``run`` inserted when no command is given, so every old ``run_bench.py --flag`` works."""
    if not argv or (argv[0] not in COMMANDS and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["run", *argv]
    return argv


def _device(choice: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N, checked against the machine."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = choice.partition(":")
    if choice == "cpu":
        return choice
    if kind != "cuda" or (index and not index.isdigit()):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {choice!r}")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {choice} was given but CUDA is not available")
    if index and int(index) >= torch.cuda.device_count():
        raise UsageError(f"--device {choice}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return choice


def _list_plugins() -> str:
    lines = []
    for registry in (ciphers, classifiers, attacks):
        lines.append(f"{registry.kind}s:")
        for name in registry.names():
            entry = registry.entry(name)
            lines.append(f"  {name:<12} {entry.origin:<12} {entry.module}.{entry.obj.__qualname__}")
        for name, error in sorted(registry.load_errors.items()):
            lines.append(f"  {name:<12} NOT LOADED   {error}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, stdout: Callable[[str], None] = print) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    threads = torch.get_num_threads()
    try:
        try:
            args = build_parser().parse_args(_with_default_command(argv))
        except SystemExit as exit_:  # --help, --version
            return int(exit_.code or 0)
        return _dispatch(args, stdout)
    except (UsageError, ConfigError, KeyError, ValueError, FileNotFoundError, ResultsSchemaError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests) get their setting back


def _dispatch(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    if args.command == "run":  # run's own flags are checked even when an alias turns it into another command
        _check_run_flags(args)
        args.command = _aliased(args)
    return COMMANDS[args.command](args, stdout)


def _check_run_flags(args: argparse.Namespace) -> None:
    args.device = _device(args.device)
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 (torch's default) or a positive count, got {args.threads}")
    if args.workers < 1:
        raise UsageError(f"--workers must be a positive count, got {args.workers}")
    if args.address is not None and args.executor != "ray":
        raise UsageError("--address is for --executor ray")
    if args.workers > 1 and args.executor != "local":
        raise UsageError("--workers is for --executor local (Ray schedules its tasks on the cluster's CPUs and GPUs)")
    if args.executor == "ray" and not (args.list or args.report_only or args.dry_run):
        from harness.run.executors.ray import require_ray

        try:
            require_ray()
        except ImportError as exc:
            raise UsageError(str(exc)) from None


def _aliased(args: argparse.Namespace) -> str:
    """The command an old flag of ``run`` stands for (``--list``, ``--report-only DIR``, ``--dry-run``)."""
    if args.list:
        return "list"
    if args.report_only:
        args.dir = args.report_only
        return "report"
    return "plan" if args.dry_run else "run"


def _planned(args: argparse.Namespace) -> tuple[dict, list[Cell]]:
    """The resolved configuration and the cells of the grid (of this shard) that the flags select."""
    config = resolve_config(
        args.preset,
        args.config,
        {"datasets": ["images"] if args.images else _patterns(args.dataset), "data_dir": args.images or args.data_dir, "seed": args.seed},
        origin={"datasets": "--images" if args.images else "--dataset", "data_dir": "--images" if args.images else "--data-dir", "seed": "--seed"},
    )
    cells = plan_cells(config, _selection(args))
    if getattr(args, "shard", None):
        try:
            index, count = parse_shard(args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cells = shard_cells(cells, index, count)
    return config, cells


def _out(args: argparse.Namespace, config: dict) -> Path:
    out = Path(args.out or Path("runs") / config["preset"])
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; name a new or existing run folder")
    return out


def _selection(args: argparse.Namespace) -> Selection:
    kinds = tuple(_patterns(args.kinds) or CELL_KINDS)
    unknown = sorted(set(kinds) - set(CELL_KINDS))
    if unknown:
        raise UsageError(f"--kinds: unknown kind(s) {unknown}; choose from {', '.join(CELL_KINDS)}")
    return Selection(_patterns(args.ciphers), _patterns(args.classifiers), _patterns(args.attacks), kinds)


# -- the commands -----------------------------------------------------------------------------
def _list_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    stdout(_list_plugins())
    return 0


def _validate_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    import yaml

    config, cells = _planned(args)
    stdout(yaml.safe_dump(config, sort_keys=False, default_flow_style=None).rstrip("\n"))
    stdout(f"# valid: {len(cells)} cells")
    return 0


def _plan_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    config, cells = _planned(args)
    out = _out(args, config)
    runner = Runner(CellContext(config, out))
    finished = runner.finished_cells(cells) if args.resume and out.is_dir() else set()
    for cell in cells:
        stdout(f"{'done ' if cell in finished else 'to do'}  {cell.label}  [{runner.identity(cell)}]")
    stdout(f"{len(cells)} cells, {sum(c in finished for c in cells)} already done in {out}")
    return 0


def _run_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    config, cells = _planned(args)
    return _run(args, config, cells, _out(args, config), stdout)


def _report_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    return _report(Path(args.dir), stdout)


def _merge_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    """Copy every verified record of the shard folders into OUT, then compile OUT with its
    run.json's configuration and render the report."""
    out, shards = Path(args.out), [Path(s) for s in args.shards]
    for shard in shards:
        if not ResultStore(shard).run_path.is_file():
            raise UsageError(f"merge: {shard} is not a run folder (no run.json)")
    store = ResultStore(out).prepare(resume=True)
    if not store.run_path.exists():
        if not shards:
            raise UsageError(f"merge: {out} has no run.json; name the shard folders to merge into it")
        store.write_run(ResultStore(shards[0]).read_run())
    copied = store.merge_from(shards)
    run = store.read_run()
    compiled = Runner(CellContext(run["config"], out, device=run.get("device", "cpu"))).compile_results()
    run["cells"] = len(compiled)
    store.write_run(run, merge_key_spaces=True)
    stdout(f"merged {copied} record(s) from {len(shards)} folder(s): {len(compiled)} cells in {out}")
    return _report(out, stdout)


def _report(folder: Path, stdout: Callable[[str], None]) -> int:
    from reports.markdown import render_report

    if not folder.is_dir():
        raise UsageError(f"report: {folder} is not a folder; give a run folder holding results.csv and run.json")
    stdout(f"report: {render_report(folder)}")
    return 0


def _run(args: argparse.Namespace, config: dict, cells: list[Cell], out: Path, stdout: Callable[[str], None]) -> int:
    from harness.run.executors.torchrun import DistributedCellFailed, follow, join, launched_by_torchrun, leave

    if not launched_by_torchrun():
        return _run_here(args, config, cells, out, stdout, args.device, args.executor)
    if args.executor != "local" or args.workers > 1:
        raise UsageError("under torchrun the ranks share each accuracy cell; drop --executor ray and --workers")
    world, device = join(args.device)
    try:
        if world.is_leader:
            return _run_here(args, config, cells, out, stdout, device, "torchrun")
        if args.threads:
            torch.set_num_threads(args.threads)
        follow(cells, CellContext(config, out, device=device, refresh_cache=args.refresh_cache), world)
        return 0
    except DistributedCellFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        leave()


def _run_here(
    args: argparse.Namespace, config: dict, cells: list[Cell], out: Path, stdout: Callable[[str], None], device: str, executor: str
) -> int:
    from reports.markdown import render_report

    store = ResultStore(out).prepare(args.resume)
    if store.results_path.exists() and not store.cells_dir.is_dir():
        raise UsageError(
            f"{store.results_path} is not backed by cell records ({store.cells_dir} is missing): it was written by an "
            "older scramblebench or by hand and cannot be resumed; start a fresh run with --no-resume or choose a new folder"
        )
    if args.threads:
        torch.set_num_threads(args.threads)  # the runner owns the process; components never set it
    started, clock = now(), time.perf_counter()
    display = ProgressDisplay(args.progress, len(cells), heartbeat=args.heartbeat)
    ctx = CellContext(config, out, device=device, refresh_cache=args.refresh_cache, progress=display.for_cell)
    runner = Runner(ctx)
    run = run_metadata(config, ctx, cells, device, started)
    if executor == "torchrun":
        import torch.distributed as dist

        run["distributed"] = {"world_size": dist.get_world_size(), "backend": dist.get_backend()}
    runner.store.write_run(run, merge_key_spaces=True)
    try:
        failed = runner.run(cells, make_executor(executor, workers=args.workers, address=args.address), on_cell_done=display.cell_done)
    finally:
        display.close()
        run["wall_s"] = time.perf_counter() - clock
        runner.store.write_run(run, merge_key_spaces=True)
    report = render_report(out)
    stdout(f"report: {report}  ({len(cells)} cells, {failed} failed, {run['wall_s']:.0f} s)")
    return 1 if failed else 0


#: every subcommand and the function that runs it
COMMANDS: dict[str, Callable[[argparse.Namespace, Callable[[str], None]], int]] = {
    "run": _run_command,
    "plan": _plan_command,
    "report": _report_command,
    "merge": _merge_command,
    "list": _list_command,
    "validate": _validate_command,
}
