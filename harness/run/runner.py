"""The runner: run the missing cells of a plan through an executor, store their records, compile
the results.

A cell with a verified record of its identity (:mod:`harness.run.identity`) in the run folder is
skipped (resume), any other is computed.  Every result is one checksummed record
(``cells/<hash>.json``), written by this process only; results.csv and per_image.csv are
compiled from the records after every cell and at the end.  A failing cell is recorded with its
error and the run goes on.  The runner does no cell maths (:mod:`harness.run.cells`) and starts no
process (:mod:`harness.run.executors`).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import numpy as np

from harness.restorations import RestorationLog
from harness.results import CellRecord, DamagedRecordError, ResultStore, encode_array
from harness.run import cells
from harness.run.cells import CellContext, CellOutcome, CellOutput, Failure
from harness.run.executors.base import Executor
from harness.run.executors.local import SerialExecutor
from harness.run.identity import cell_hash, cell_inputs, code_version, normalised
from harness.run.plan import Cell
from harness.run.provenance import git_commit

#: called for every cell of a run with its status (ok, failed, n/a, cached) and seconds
CellDone = Callable[[Cell, str, float], None]


class Runner:
    """Runs the cells of one configuration (``ctx.config``) into one run folder (``ctx.run_dir``)."""

    def __init__(self, ctx: CellContext) -> None:
        self.ctx = ctx
        self.store = ResultStore(ctx.run_dir)
        self.log = RestorationLog(self.store)
        self._hashes: dict[Cell, str] = {}
        self._git: str | None = None

    # -- identity -------------------------------------------------------------------------
    def inputs(self, cell: Cell) -> dict[str, Any]:
        """The parts of the resolved configuration that ``cell`` reads (see :func:`cell_inputs`)."""
        return cell_inputs(self.ctx.config, cell)

    def identity(self, cell: Cell) -> str:
        """The cell's hash: its coordinates, :meth:`inputs` and the code version of what it runs."""
        if cell not in self._hashes:
            self._hashes[cell] = cell_hash(cell, self.inputs(cell), code_version(cell))
        return self._hashes[cell]

    def finished_cells(self, cells: Iterable[Cell]) -> set[Cell]:
        """The cells with a verified, not failed record of their identity in the run folder."""
        done = set()
        for cell in cells:
            try:
                record = self.store.read_record(self.store.record_path(self.identity(cell)))
            except (FileNotFoundError, DamagedRecordError):
                continue
            if record["status"] != "failed":
                done.add(cell)
        return done

    # -- running --------------------------------------------------------------------------
    def run(self, cells: Iterable[Cell], executor: Executor | None = None, on_cell_done: CellDone | None = None) -> int:
        """Run the cells without a finished record through ``executor`` (default: serial, here);
        returns how many of them failed."""
        todo = self._todo(list(cells), on_cell_done)
        self.compile_results()
        failures = 0

        def finish(cell: Cell, outcome: CellOutcome) -> None:
            nonlocal failures
            output = outcome.output or CellOutput(self.failure_rows(cell, outcome.failure))
            self.write_record(cell, output, outcome.seconds)
            status = "failed" if any(r.get("status") == "failed" for r in output.rows) else output.rows[0]["status"]
            failures += status == "failed"
            if on_cell_done:
                on_cell_done(cell, status, outcome.seconds)

        (executor or SerialExecutor()).run(todo, self.ctx, finish)
        self.compile_results()
        return failures

    def _todo(self, cells: list[Cell], on_cell_done: CellDone | None) -> list[Cell]:
        """The cells without a finished record; a damaged record is named, a finished one touched
        (it is the current record of its coordinates)."""
        planned = {self.identity(c) for c in cells}
        records, damaged = self.store.scan_records()
        for path, reason in damaged:
            what = "that cell is recomputed" if path.stem in planned else "ignored (not a cell of this run)"
            self.store.warn(f"{reason}; {what}")
        good = {r["cell_hash"]: r for r in records}
        todo = []
        for cell in cells:
            record = good.get(self.identity(cell))
            if record is not None and record["status"] != "failed" and not self._log_missing(cell, record):
                self.store.touch_record(record["cell_hash"])
                if on_cell_done:
                    on_cell_done(cell, "cached", 0.0)
            else:
                todo.append(cell)
        return todo

    def _log_missing(self, cell: Cell, record: dict[str, Any]) -> bool:
        """Whether a run with ``--log-restorations`` must redo a finished security cell because its
        restorations are not logged (it was computed without the flag, or its archive is gone)."""
        return self.ctx.log_restorations and record["status"] == "ok" and cell.kind == "security" and not self.log.logged(record["cell"], record["cell_hash"])

    def run_cell(self, cell: Cell) -> list[dict[str, Any]]:
        """Compute one cell here, store its record and compile the run folder; returns its rows."""
        started = time.perf_counter()
        output = cells.compute_cell(cell, self.ctx)
        self.write_record(cell, output, time.perf_counter() - started)
        return output.rows

    # -- the run folder -------------------------------------------------------------------
    def failure_rows(self, cell: Cell, failure: Failure | None) -> list[dict[str, Any]]:
        """The row of a failed cell; its traceback goes to errors.log."""
        assert failure is not None
        self.store.log_error(cell.label, failure.traceback)
        return [{**self.ctx.row_base(cell), "status": "failed", "metric": "error", "note": failure.message}]

    def write_record(self, cell: Cell, output: CellOutput, elapsed: float = float("nan")) -> CellRecord:
        """Write the cell's record (rows, per-image scores, examples; checksummed), then compile."""
        digest = self.identity(cell)
        rows = [{**row, "elapsed_s": row.get("elapsed_s", elapsed), "cell_hash": digest} for row in output.rows]
        record: CellRecord = {
            "cell_hash": digest,
            "cell": dataclasses.asdict(cell),
            "inputs": self.inputs(cell),
            "code": code_version(cell),
            "status": "failed" if any(r.get("status") == "failed" for r in rows) else str(rows[0]["status"]),
            "rows": rows,
            "per_image": {m: np.asarray(v, dtype=np.float64).tolist() for m, v in (output.per_image or {}).items()},
            "examples": [
                {"name": name, "images": encode_array(np.asarray(images)), "ssim": None if scores is None else np.asarray(scores, dtype=np.float64).tolist()}
                for name, images, scores in output.examples
            ],
            "finished": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "elapsed_s": elapsed,
            "device": self.ctx.device,
            "git_commit": self._commit(),
            "host": platform.node(),
        }
        if output.restorations is not None:
            self.log.save(record["cell"], digest, output.restorations)
        self.store.write_record(record)
        self.compile_results()
        return record

    def _commit(self) -> str:
        if self._git is None:
            self._git = git_commit()
        return self._git

    def compile_results(self) -> list[dict[str, Any]]:
        """Rebuild results.csv, per_image.csv, examples/ and the restoration index from the records
        (under the folder's lock).

        Only records of this configuration count: a record whose inputs differ from what its cell
        reads in ``ctx.config`` (another seed, n_test, epochs...) is kept in ``cells/`` but left
        out; of several records of one cell (code versions), the newest (file time) wins.
        """
        with self.store.lock():
            records, _ = self.store.scan_records()
            chosen: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = {}
            for record in records:
                try:
                    cell = Cell(**record["cell"])
                    current = normalised(self.inputs(cell))
                except Exception:  # a cell of a plugin that is not installed now, or another grid
                    continue
                if normalised(record["inputs"]) != current:
                    continue
                try:
                    stamp = self.store.record_path(record["cell_hash"]).stat().st_mtime_ns
                except FileNotFoundError:
                    continue
                best = chosen.get(cell.id)
                if best is None or (stamp, record["cell_hash"]) > (best[0], best[1]["cell_hash"]):
                    chosen[cell.id] = (stamp, record)
            ordered = sorted((r for _, r in chosen.values()), key=lambda r: (r["finished"], r["cell_hash"]))
            self.store.write_compiled(ordered)
            self.log.write_index(ordered)
            return ordered
