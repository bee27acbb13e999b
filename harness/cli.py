"""Command line of ``run_bench.py`` / ``scramblebench``: parse, resolve the config, run, report.

Exit codes: 0 when every cell succeeded, 1 when any cell failed (the report still shows it),
2 for usage errors.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from harness.bench import Cell, Runner, Selection, now, plan_cells, run_metadata
from harness.presets import PRESETS, resolve_config
from harness.progress import ProgressCallback
from harness.registry import attacks, ciphers, classifiers
from harness.results import KINDS as CELL_KINDS
from harness.results import ResultsSchemaError, ResultStore


class UsageError(Exception):
    """A bad argument: printed with the usage and exit code 2."""


def _patterns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise UsageError("an empty list was given; use comma-separated names or fnmatch patterns")
    return patterns


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_bench.py",
        description="Run the scramblebench comparison grid (accuracy and attacks for every cipher) and write a report.",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="protocol preset (default: quick)")
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file overriding preset keys")
    parser.add_argument("--ciphers", help="comma list of cipher names or fnmatch patterns (default: all registered)")
    parser.add_argument("--classifiers", help="comma list of classifier names or patterns (default: all)")
    parser.add_argument("--attacks", help="comma list of attack names or patterns (default: all)")
    parser.add_argument("--kinds", help="comma list of cell kinds to run: key_space, accuracy, security (default: all)")
    parser.add_argument("--dataset", help="comma list of datasets: natural, cifar10, cifar100, folder")
    parser.add_argument("--data-dir", help="folder holding CIFAR pickles or a folder dataset")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<preset>)")
    parser.add_argument("--seed", type=int, help="master seed (keys, data, training and attacks derive from it)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for the run (default 1: the small networks of the quick preset train "
        "fastest single-threaded on 2 cores; 0 keeps torch's default)",
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="resume", action="store_true", default=True, help="skip finished cells (default)")
    resume.add_argument("--no-resume", dest="resume", action="store_false", help="discard earlier results in --out")
    parser.add_argument("--refresh-cache", action="store_true", help="retrain cached models instead of loading them")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and what is already done, run nothing")
    parser.add_argument("--report-only", metavar="DIR", help="re-render the report of an existing run folder")
    parser.add_argument("--progress", choices=["bar", "plain", "none"], default="bar")
    parser.add_argument("--list", action="store_true", help="list registered plugins with their origin")
    return parser


def _device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but CUDA is not available")
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


class ProgressDisplay:
    """The only place that draws progress: a tqdm bar, plain lines, or nothing."""

    def __init__(self, mode: str, total: int) -> None:
        self.mode = mode
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="cell", file=sys.stderr, dynamic_ncols=True)
        self._last_plain = 0.0

    def for_cell(self, cell: Cell) -> ProgressCallback | None:
        if self.mode == "none":
            return None

        def update(done: int, total: int, message: str) -> None:
            text = f"{cell.cipher}/{cell.classifier or cell.attack}: {message} {done}/{total}"
            if self.bar is not None:
                self.bar.set_postfix_str(text, refresh=True)
            elif time.monotonic() - self._last_plain > 5:
                self._last_plain = time.monotonic()
                print(f"  {text}", file=sys.stderr, flush=True)

        return update

    def cell_done(self, cell: Cell, status: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
        elif self.mode == "plain":
            print(f"[{status}] {cell.label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(argv: Sequence[str] | None = None, *, stdout: Callable[[str], None] = print) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    threads = torch.get_num_threads()
    try:
        return _run(args, stdout)
    except (UsageError, KeyError, ValueError, FileNotFoundError, ResultsSchemaError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests) get their setting back


def _run(args: argparse.Namespace, stdout: Callable[[str], None]) -> int:
    from reports.markdown import render_report

    if args.list:
        stdout(_list_plugins())
        return 0
    if args.report_only:
        stdout(f"report: {render_report(args.report_only)}")
        return 0
    config = resolve_config(
        args.preset,
        args.config,
        {"datasets": _patterns(args.dataset), "data_dir": args.data_dir, "seed": args.seed},
    )
    kinds = tuple(_patterns(args.kinds) or CELL_KINDS)
    unknown = sorted(set(kinds) - set(CELL_KINDS))
    if unknown:
        raise UsageError(f"--kinds: unknown kind(s) {unknown}; choose from {', '.join(CELL_KINDS)}")
    selection = Selection(_patterns(args.ciphers), _patterns(args.classifiers), _patterns(args.attacks), kinds)
    cells = plan_cells(config, selection)
    out = Path(args.out or Path("runs") / config["preset"])
    device = _device(args.device)
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 (torch's default) or a positive count, got {args.threads}")
    if args.dry_run:
        finished = ResultStore(out).finished_cells(ResultStore(out).load()) if args.resume else set()
        for cell in cells:
            stdout(f"{'done ' if cell.id in finished else 'to do'}  {cell.label}")
        stdout(f"{len(cells)} cells, {sum(c.id in finished for c in cells)} already done in {out}")
        return 0
    if not args.resume and out.exists():
        for name in ("results.csv", "run.json", "report.md", "errors.log"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "examples", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    ResultStore(out).load()  # a corrupt results file is a usage error, before any work starts
    if args.threads:
        torch.set_num_threads(args.threads)  # the runner owns the process; components never set it
    started, clock = now(), time.perf_counter()
    display = ProgressDisplay(args.progress, len(cells))
    runner = Runner(config, out, device=device, refresh_cache=args.refresh_cache, cell_progress=display.for_cell)
    run = run_metadata(config, runner, cells, device, started)
    runner.store.write_run(run)
    try:
        failed = runner.run(cells, on_cell_done=display.cell_done)
    finally:
        display.close()
        run["wall_s"] = time.perf_counter() - clock
        runner.store.write_run(run)
    report = render_report(out)
    stdout(f"report: {report}  ({len(cells)} cells, {failed} failed, {run['wall_s']:.0f} s)")
    return 1 if failed else 0
