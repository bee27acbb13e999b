"""The command line's grammar: subcommands, their flags and help, and the one kind of user error
(:class:`UsageError`, one line and exit status 2).  What each command does is :mod:`harness.run.cli`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn, Sequence

from harness.run.config import PRESETS

PROG = "scramblebench"


class UsageError(Exception):
    """A user error: printed as one line, ``scramblebench: error: ...``, with exit code 2."""


def patterns(text: str | None) -> list[str] | None:
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


class _Version(argparse.Action):
    """``--version``, looked up only when asked: building the parser must stay cheap (``list``)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0, help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        from harness.run.identity import scramblebench_version

        parser._print_message(f"{PROG} {scramblebench_version()}\n", sys.stdout)
        parser.exit()


def image_size_flag(text: str) -> list[int]:
    """``--image-size``: ``S`` (S x S) or ``HxW``, positive integers."""
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--image-size must be S or HxW with positive integers (e.g. 224 or 224x160), got {text!r}")
    height, width = int(parts[0]), int(parts[-1])
    return [height, width]


def block_size_flag(text: str) -> int:
    """``--block-size``: a positive integer."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--block-size must be a positive integer (e.g. 16), got {text!r}")
    return int(text)


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
    group.add_argument(
        "--strict", action="store_true",
        help="refuse (exit 2) an image file of --images (or of a folder dataset) that cannot be used: unreadable, empty, "
        "truncated or undecodable (default: skip it with one warning line)",
    )
    group.add_argument("--seed", type=int, help="master seed, 0 to 2**63 - 1 (keys, data, training and attacks derive from it)")
    group.add_argument(
        "--image-size", metavar="S|HxW", type=image_size_flag,
        help="every cipher and classifier at this size, on every dataset (default: the preset's; 224 with --images)",
    )
    group.add_argument(
        "--block-size", metavar="M", type=block_size_flag,
        help="the block of every block-wise cipher (not plain or pe; the ViT's patch follows it) "
        "(default: each cipher's own in the preset; 16 with --images)",
    )
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
    parser.add_argument("--version", action=_Version)
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
        help="cells run at once, each in a spawned worker process with --threads threads (default 1: one worker, "
        "cells one after another; a cell that crashes its worker is one failed cell); `make bench` uses 2 on a 2-core machine",
    )
    run.add_argument(
        "--in-process", action="store_true",
        help="compute the cells one after another in this process, not in a worker (for pdb and profilers; "
        "a cell that crashes the process ends the run)",
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
        "--log-restorations", action="store_true",
        help="save every restored image of every security cell in --out/restorations/ (one .npz per cell, with image ids "
        "and per-image scores, and index.csv); the folder then holds the victim's images as restored. Finished security "
        "cells without a log are recomputed",
    )
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


def parse_device(choice: str) -> str:
    """``--device``: auto, cpu, cuda or cuda:N, checked against the machine."""
    import torch

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
