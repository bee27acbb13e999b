"""Benchmark session setup: the torch thread count, and the markdown tables of docs/performance.md
printed from the cipher and training benchmarks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from tabulate import tabulate

_ROWS: list[dict] = []
_TRAINING_ROWS: list[dict] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-threads",
        type=int,
        default=1,
        help="torch CPU threads while benchmarking (default 1: stable medians on a shared machine; "
        "0 keeps torch's default)",
    )
    parser.addoption(
        "--bench-tiny",
        action="store_true",
        help="tiny sizes (a one-block ViT, a few steps): checks the training benchmarks on a CPU, not a measurement",
    )


@pytest.fixture(scope="session")
def bench_tiny(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--bench-tiny"))


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Sets the thread count for the session and restores torch's afterwards."""
    before = torch.get_num_threads()
    wanted = request.config.getoption("--bench-threads")
    torch.set_num_threads(wanted or before)
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def speed_table() -> list[dict]:
    """Rows appended by each benchmark (``extra_info`` plus the cipher's median)."""
    return _ROWS


@pytest.fixture(scope="session")
def training_table() -> list[dict]:
    """Rows of the harness-vs-bare-timm training benchmark (test_training_throughput.py)."""
    return _TRAINING_ROWS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TRAINING_ROWS:
        columns = list(_TRAINING_ROWS[0])
        terminalreporter.section("training throughput: the harness against a bare timm loop, eager vs eager and compiled vs compiled (medians of 3 rounds)")
        rows = [[row[c] for c in columns] for row in _TRAINING_ROWS]
        terminalreporter.write_line(tabulate(rows, headers=columns, tablefmt="github", floatfmt=".3g"))
    if not _ROWS:
        return
    table: dict[tuple[str, str], dict[str, str]] = {}
    for row in _ROWS:
        cells = table.setdefault((row["cipher"], row["shape"]), {"cipher": row["cipher"], "batch": row["shape"]})
        cells["block"] = str(row["block_size"])
        cells[f"{row['direction']} ms"] = f"{1e3 * row['median_s']:.2f}"
        cells[f"{row['direction']} clone ms"] = f"{1e3 * row['clone_median_s']:.3f}"
        cells[f"{row['direction']} / clone"] = f"{row['ratio_to_clone']:.1f}"
    clocks = ", ".join(sorted({str(row["clock"]) for row in _ROWS}))
    terminalreporter.section(f"cipher throughput (median {clocks}; ratio to x.clone() measured in the same test)")
    columns = ["cipher", "batch", "block"] + [
        f"{direction}{column}" for direction in ("encrypt", "decrypt") for column in (" ms", " clone ms", " / clone")
    ]
    rows = [[cells.get(c, "") for c in columns] for _, cells in sorted(table.items())]
    terminalreporter.write_line(tabulate(rows, headers=columns, tablefmt="github"))
