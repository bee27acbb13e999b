"""The one summary table ``benchmarks/gpu_checks.sh`` prints last: each GPU goal, what was measured, pass or fail.

    .venv/bin/python -m benchmarks.gpu_summary OUT [--tiny] [--total-seconds S]

Reads only the files the script's steps wrote to ``OUT`` (``steps.tsv``: step, exit status,
seconds; ``device_tests.txt``; ``throughput.json``, pytest-benchmark's file with each row in
``extra_info``; ``pe_rate.json``; ``security_cells.json``; ``time_model.txt``), so it can be rerun
on a copied folder.  A step that timed out or crashed shows as FAIL with its exit status (its
own row, next to whatever figures it wrote before); under ``--tiny`` (a CPU check of the script)
the GPU goals are not judged: a row says ``ran`` when the step produced its figure.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tabulate import tabulate

#: the issue's goals on one H200
RATIO_GOAL = 0.95
PE_GOAL = 100_000
NONE_CELL_GOAL_S = 1.0
SCRIPT_GOAL_S = 480
#: the compiled bare loop's rate the issue measured for ViT-B/16 at 224, bf16, batch 128 (context, not a goal)
BARE_COMPILED_H200 = 3416
_GRID = re.compile(r"estimated paper grid: (?P<one>[\d.]+) h on 1 device, (?P<eight>[\d.]+) h on 8")
_PYTEST_TAIL = re.compile(r"^=* ?(?P<counts>\d+ (?:passed|failed|skipped|errors?|deselected)\b.*?) in [\d.]+s", re.MULTILINE)


@dataclass
class Row:
    check: str
    measured: str
    goal: str
    passed: bool | None  # None: no goal (context only)
    found: bool = True  # False: the step left no figure (crashed, timed out, not run)
    judged_in_tiny: bool = False  # a goal that holds on the CPU too (the tests pass)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _steps(out: Path) -> dict[str, tuple[int, float]]:
    path = out / "steps.tsv"
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return {name: (int(status), float(seconds)) for name, status, seconds in rows}


def _step_note(steps: dict[str, tuple[int, float]], name: str) -> str:
    if name not in steps:
        return "not run"
    status, seconds = steps[name]
    return f"exit {status}{' (timed out)' if status == 124 else ''} after {seconds:.0f} s"


def device_tests(out: Path, steps: dict[str, tuple[int, float]]) -> list[Row]:
    text = (out / "device_tests.txt").read_text() if (out / "device_tests.txt").exists() else ""
    counts = _PYTEST_TAIL.findall(text)
    status = steps.get("device_tests", (None, 0))[0]
    measured = counts[-1] if counts else _step_note(steps, "device_tests")
    return [Row("device tests (--device)", measured, "all pass", status == 0, found=bool(counts), judged_in_tiny=True)]


def throughput(out: Path, steps: dict[str, tuple[int, float]]) -> list[Row]:
    data = _read_json(out / "throughput.json")
    rows = [b["extra_info"] for b in (data or {}).get("benchmarks", []) if b.get("extra_info")]
    if not rows:
        return [Row("training throughput", _step_note(steps, "throughput"), f"ratio >= {RATIO_GOAL}", False, found=False)]
    result = []
    for row in rows:
        paper = row["case"].startswith("paper")
        measured = f"{row['harness img/s']:,.0f} / {row['bare timm img/s']:,.0f} img/s = {row['ratio']:.3f}"
        judged = paper and row["mode"] == "compiled"
        goal = f">= {RATIO_GOAL} (compiled bare on H200: {BARE_COMPILED_H200:,} img/s)" if judged else "context"
        passed = row["ratio"] >= RATIO_GOAL if judged else None
        result.append(Row(f"{row['case']}, {row['mode']}: harness / bare", measured, goal, passed))
    for row in rows:
        syncs = row.get("host syncs per step")
        if isinstance(syncs, (int, float)):
            result.append(Row(f"{row['case']}, {row['mode']}: host syncs per step", f"{syncs:g}", "0", syncs == 0))
    return result


def pe_rate(out: Path, steps: dict[str, tuple[int, float]]) -> list[Row]:
    data = _read_json(out / "pe_rate.json")
    if data is None:
        return [Row("pe encrypt rate at 224", _step_note(steps, "pe_rate"), f">= {PE_GOAL:,} img/s", False, found=False)]
    label = f"pe encrypt rate at {data['side']}x{data['side']}, batch {data['batch']}"
    return [Row(label, f"{data['images_per_s']:,.0f} img/s", f">= {PE_GOAL:,} img/s", data["images_per_s"] >= PE_GOAL)]


def security_cells(out: Path, steps: dict[str, tuple[int, float]]) -> list[Row]:
    data = _read_json(out / "security_cells.json")
    if data is None:
        return [Row("security cell proposed/none", _step_note(steps, "security_cells"), f"< {NONE_CELL_GOAL_S:g} s", False, found=False)]
    result = []
    for row in data["rows"]:
        judged = row["cell"].endswith("/none")
        measured = f"{row['warm s']:.3f} s warm ({row['cold s']:.2f} s cold), {row['images']} images"
        goal, passed = (f"< {NONE_CELL_GOAL_S:g} s", row["warm s"] < NONE_CELL_GOAL_S) if judged else ("context", None)
        result.append(Row(row["cell"], measured, goal, passed))
    return result


def time_model(out: Path, steps: dict[str, tuple[int, float]]) -> list[Row]:
    path = out / "time_model.txt"
    found = _GRID.findall(path.read_text()) if path.exists() else []
    if not found:
        return [Row("time model of the paper grid", _step_note(steps, "time_model"), "estimate printed", False, found=False)]
    one, eight = found[-1]
    return [Row("time model of the paper grid", f"{one} h on 1 device, {eight} h on 8", "estimate printed", True)]


SECTIONS: tuple[Callable[[Path, dict[str, tuple[int, float]]], list[Row]], ...] = (
    device_tests, throughput, pe_rate, security_cells, time_model,
)


def summary(out: Path, tiny: bool, total_seconds: float | None) -> str:
    """The markdown table of every check, the whole script's time last."""
    steps = _steps(out)
    rows = [row for section in SECTIONS for row in section(out, steps)]
    # a step cut short may still have written figures (the throughput cases done before it)
    rows += [Row(f"step {name}", _step_note(steps, name), "exit 0", False) for name, (status, _) in steps.items() if status]
    if total_seconds is not None:
        rows.append(Row("whole script", f"{total_seconds:.0f} s", f"< {SCRIPT_GOAL_S} s", total_seconds < SCRIPT_GOAL_S))

    def verdict(row: Row) -> str:
        if not row.found:
            return "FAIL"
        if row.passed is None:
            return ""
        if tiny and not row.judged_in_tiny:
            return "ran"
        return "pass" if row.passed else "FAIL"

    body = [[row.check, row.measured, row.goal, verdict(row)] for row in rows]
    title = "GPU checks summary" + (" (--tiny on the CPU: checks the script, not the goals)" if tiny else "")
    return title + "\n" + tabulate(body, headers=["check", "measured", "goal", "result"], tablefmt="github")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder gpu_checks.sh wrote")
    parser.add_argument("--tiny", action="store_true", help="a CPU check of the script: goals are not judged")
    parser.add_argument("--total-seconds", type=float, default=None, help="the whole script's wall time")
    args = parser.parse_args(argv)
    text = summary(args.out, args.tiny, args.total_seconds)
    print(text)
    return text


if __name__ == "__main__":
    main()
