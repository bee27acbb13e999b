"""Command line of ``scramblebench`` / ``run_bench.py``: parse, resolve the config, run, report.

Subcommands: ``run`` (the default when none is given), ``plan`` (the grid, nothing run),
``report DIR``, ``merge OUT SHARD...`` (combine run folders' cell records), ``list`` and
``validate`` (print the resolved, checked config as YAML).  The old
flags ``--dry-run``, ``--report-only DIR`` and ``--list`` still work as aliases.

Exit codes: 0 when every cell succeeded, 1 when any cell failed (the report still shows it) or,
for ``validate`` and ``plan``, when a selected plugin breaks its contract (its cells would fail;
one stderr line per plugin), 2 for user errors (one line on stderr: ``scramblebench: error:
...``, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from harness.registry import attacks, ciphers, classifiers
from harness.run.arguments import PROG, UsageError, build_parser, parse_device, patterns
from harness.run.config.values import ConfigError

if TYPE_CHECKING:
    from harness.results import ResultStore
    from harness.run.config import Fitted
    from harness.run.plan import Cell, Selection

# The runner's modules (torch, timm, pandas) are imported by the commands that run cells, not
# here: ``list`` and ``--help`` stay fast (tests/test_cli.py checks what ``list`` imports).


def _with_default_command(argv: list[str]) -> list[str]:
    """``run`` inserted when no command is given, so every old ``run_bench.py --flag`` works."""
    if not argv or (argv[0] not in COMMANDS and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["run", *argv]
    return argv


def _list_plugins() -> str:
    lines = []
    for registry in (ciphers, classifiers, attacks):
        lines.append(f"{registry.kind}s:")
        for name in registry.names():
            entry = registry.describe(name)  # no import: listing stays fast (no torch, no timm)
            lines.append(f"  {name:<12} {entry.origin:<12} {entry.target}")
        for name, error in sorted(registry.load_errors.items()):
            lines.append(f"  {name:<12} NOT LOADED   {error}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, stdout: Callable[[str], None] = print) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = build_parser().parse_args(_with_default_command(argv))
        except SystemExit as exit_:  # --help, --version
            return int(exit_.code or 0)
        return _dispatch(args, stdout)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (a Slurm time-out, kill PID) while a run works
        print(f"{PROG}: interrupted: finished cells are kept in their records; run again to resume", file=sys.stderr)
        return 130
    except (UsageError, ConfigError, KeyError, ValueError, FileNotFoundError) as exc:  # ResultsSchemaError is a ValueError
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    if args.command == "run":  # run's own flags are checked even when an alias turns it into another command
        _check_run_flags(args)
        args.command = _aliased(args)
    return COMMANDS[args.command](args, stdout)


def _check_run_flags(args: argparse.Namespace) -> None:
    args.device = parse_device(args.device)
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
    if args.in_process and (args.workers > 1 or args.executor != "local"):
        raise UsageError("--in-process computes the cells one at a time in this process; drop --workers and --executor")


def _aliased(args: argparse.Namespace) -> str:
    """The command an old flag of ``run`` stands for (``--list``, ``--report-only DIR``, ``--dry-run``)."""
    if args.list:
        return "list"
    if args.report_only:
        args.dir = args.report_only
        return "report"
    return "plan" if args.dry_run else "run"


def _planned(args: argparse.Namespace) -> tuple[Fitted, list[Cell], list[str]]:
    """The resolved configuration (with its adaptations to the data), the cells of the grid (of this
    shard) that the flags select, each checked to build (:func:`check_cells`), and a warning line
    for every unusable image file (:func:`_checked_image_files`)."""
    from harness.run.checks import check_cells
    from harness.run.config import resolve_run
    from harness.run.plan import parse_shard, plan_cells, shard_cells

    images = args.images is not None
    fitted = resolve_run(
        args.preset,
        args.config,
        {"datasets": ["images"] if images else patterns(args.dataset), "data_dir": args.images or args.data_dir, "seed": args.seed,
         "image_size": args.image_size, "block_size": args.block_size},
        origin={"datasets": "--images" if images else "--dataset", "data_dir": "--images" if images else "--data-dir", "seed": "--seed",
                "image_size": "--image-size", "block_size": "--block-size"},
    )
    cells = plan_cells(fitted.config, _selection(args))
    check_cells(fitted.config, cells)
    if getattr(args, "shard", None):
        try:
            index, count = parse_shard(args.shard)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cells = shard_cells(cells, index, count)
    return fitted, cells, _checked_image_files(fitted.config, args.strict)


def _checked_image_files(config: dict, strict: bool) -> list[str]:
    """Every file of a dataset read from a folder of image files (``images``, ``folder``) checked
    before any cell runs: an unusable one (unreadable, empty, truncated, undecodable) is a user
    error with ``strict`` (one line naming it and why), else one warning line each, returned
    (a cell in this process does not warn again; worker processes ignore the Python warning)."""
    if config.get("data_dir") is None or not {"images", "folder"} & set(config["datasets"]):
        return []
    from harness.data import count_photographs

    lines: list[str] = []
    count_photographs(config["data_dir"], strict=strict, warn=lines.append)
    return lines


def _out(args: argparse.Namespace, config: dict) -> Path:
    out = Path(args.out or Path("runs") / config["preset"])
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; name a new or existing run folder")
    return out


def _selection(args: argparse.Namespace) -> Selection:
    from harness.results import KINDS as CELL_KINDS
    from harness.run.plan import Selection

    kinds = tuple(patterns(args.kinds) or CELL_KINDS)
    unknown = sorted(set(kinds) - set(CELL_KINDS))
    if unknown:
        raise UsageError(f"--kinds: unknown kind(s) {unknown}; choose from {', '.join(CELL_KINDS)}")
    return Selection(patterns(args.ciphers), patterns(args.classifiers), patterns(args.attacks), kinds)


def _state_adaptations(fitted: Fitted, stdout: Callable[[str], None], prefix: str = "") -> None:
    """One line per default fitted to the data (validate prefixes them as YAML comments)."""
    for line in fitted.adapted:
        stdout(f"{prefix}adapted to the data: {line}")


# -- the commands -----------------------------------------------------------------------------
def _list_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    stdout(_list_plugins())
    return 0


def _validate_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    import yaml

    from harness.results import warning_line
    from harness.run.cells import CellContext
    from harness.run.cells.contracts import plugin_violations

    fitted, cells, warnings = _planned(args)
    for line in warnings:
        warning_line(line)
    config = fitted.config
    stdout(yaml.safe_dump(config, sort_keys=False, default_flow_style=None).rstrip("\n"))
    _state_adaptations(fitted, stdout, "# ")
    broken = plugin_violations(cells, CellContext(config, Path(".")))
    stdout(f"# {'invalid' if broken else 'valid'}: {len(cells)} cells" + (f", {len(broken)} plugin(s) broke their contract" if broken else ""))
    return _contract_status(broken)


def _plan_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    from harness.results import ResultStore, warning_line
    from harness.run.cells import CellContext
    from harness.run.cells.contracts import plugin_violations
    from harness.run.runner import Runner

    fitted, cells, warnings = _planned(args)
    for line in warnings:
        warning_line(line)
    config = fitted.config
    out = _out(args, config)
    if out.is_dir():  # the folder 'run' would refuse, refused here too
        ResultStore(out).check_adoptable(args.resume)
    ctx = CellContext(config, out)
    runner = Runner(ctx)
    finished = runner.finished_cells(cells) if args.resume and out.is_dir() else set()
    for cell in cells:
        stdout(f"{'done ' if cell in finished else 'to do'}  {cell.label}  [{runner.identity(cell)}]")
    _state_adaptations(fitted, stdout)
    stdout(f"{len(cells)} cells, {sum(c in finished for c in cells)} already done in {out}")
    return _contract_status(plugin_violations(cells, ctx))


def _contract_status(violations: list[str]) -> int:
    """1 (as for a failed cell: the plugin's cells would fail) with one stderr line per broken plugin, else 0."""
    for line in violations:
        print(f"{PROG}: {line}", file=sys.stderr)
    return 1 if violations else 0


def _run_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    fitted, cells, warnings = _planned(args)
    _state_adaptations(fitted, stdout)
    return _run(args, fitted, cells, _out(args, fitted.config), stdout, warnings)


def _report_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    return _report(Path(args.dir), stdout)


def _merge_command(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    """Copy every verified record of the shard folders into OUT, then compile OUT with its
    run.json's configuration and render the report."""
    from harness.restorations import RestorationLog
    from harness.results import ResultStore, configuration_difference
    from harness.run.cells import CellContext
    from harness.run.runner import Runner

    out, shards = Path(args.out), [Path(s) for s in args.shards]
    for shard in shards:
        if not ResultStore(shard).run_path.is_file():
            raise UsageError(f"merge: {shard} is not a run folder (no run.json)")
    if not ResultStore(out).run_path.exists() and not shards:
        raise UsageError(f"merge: {out} has no run.json; name the shard folders to merge into it")
    base = out if ResultStore(out).run_path.exists() else shards[0]
    first = ResultStore(base).read_run()
    for shard in shards:  # one configuration per folder: checked before OUT is touched
        difference = configuration_difference(first["config"], ResultStore(shard).read_run()["config"], f"in {base}", f"in {shard}")
        if difference is not None:
            raise UsageError(f"merge: {shard} ran another configuration than {base} ({difference}); merge only shards of one configuration")
    store = ResultStore(out).prepare(resume=True)
    with store.active(first, adding=True):  # no clear while merging; a run of another configuration working in OUT is refused
        copied = store.merge_from(shards)
        RestorationLog(store).copy_from(shards)
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


def _run(args: argparse.Namespace, fitted: Fitted, cells: list[Cell], out: Path, stdout: Callable[[str], None], warnings: list[str]) -> int:
    from harness.run.cells import CellContext
    from harness.run.executors.torchrun import DistributedCellFailed, follow, join, launched_by_torchrun, leave

    if not launched_by_torchrun():
        return _run_here(args, fitted, cells, out, stdout, args.device, args.executor, warnings)
    if args.executor != "local" or args.workers > 1:
        raise UsageError("under torchrun the ranks share each accuracy cell; drop --executor ray and --workers")
    world, device = join(args.device)
    try:
        if world.is_leader:
            return _run_here(args, fitted, cells, out, stdout, device, "torchrun", warnings)
        with _torch_threads(args.threads):
            follow(cells, CellContext(fitted.config, out, device=device, refresh_cache=args.refresh_cache), world)
        return 0
    except DistributedCellFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        leave()


def _run_here(
    args: argparse.Namespace, fitted: Fitted, cells: list[Cell], out: Path, stdout: Callable[[str], None], device: str, executor: str,
    warnings: list[str],
) -> int:
    from harness.results import ResultStore

    store = ResultStore(out).prepare(args.resume)
    for line in warnings:  # on stderr and in errors.log
        store.warn(line)
    with _terminate_as_interrupt(), _torch_threads(args.threads):
        return _run_in(args, fitted, cells, out, stdout, device, executor, store)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """``--threads`` for the run (0 keeps torch's default): the runner owns the process and
    components never set it; in-process callers (tests) get their setting back."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM finishes a run like Ctrl-C (in the main thread; elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_in(
    args: argparse.Namespace, fitted: Fitted, cells: list[Cell], out: Path, stdout: Callable[[str], None], device: str, executor: str,
    store: ResultStore,
) -> int:
    from harness.run.cells import CellContext
    from harness.run.executors import make_executor
    from harness.run.progress_display import ProgressDisplay
    from harness.run.provenance import now, run_metadata
    from harness.run.runner import Runner
    from reports.markdown import render_report

    config = fitted.config
    if store.results_path.exists() and not store.cells_dir.is_dir():
        raise UsageError(
            f"{store.results_path} is not backed by cell records ({store.cells_dir} is missing): it was written by an "
            "older scramblebench or by hand and cannot be resumed; start a fresh run with --no-resume or choose a new folder"
        )
    started, clock = now(), time.perf_counter()
    ctx = CellContext(config, out, device=device, refresh_cache=args.refresh_cache, log_restorations=args.log_restorations)
    runner = Runner(ctx)
    run = run_metadata(config, ctx, cells, device, started, adapted=fitted.adapted)
    if executor == "torchrun":
        import torch.distributed as dist

        run["distributed"] = {"world_size": dist.get_world_size(), "backend": dist.get_backend()}
    # one configuration per folder; a --no-resume clear is refused while this run works
    with runner.store.active(run, adding=bool(getattr(args, "shard", None))):
        display = ProgressDisplay(args.progress, len(cells), heartbeat=args.heartbeat)  # drawn once the run may start
        ctx.progress = display.for_cell
        try:
            failed = runner.run(cells, make_executor(executor, workers=args.workers, address=args.address, in_process=args.in_process),
                                on_cell_done=display.cell_done)
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
