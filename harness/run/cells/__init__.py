"""The three cell kinds as functions of ``(cell, ctx)``: what one cell computes, apart from where
and how it is scheduled (:mod:`harness.run.executors`) and how it is stored
(:mod:`harness.run.runner`).  Every executor calls :func:`compute_guarded` and nothing else."""

from __future__ import annotations

import time
import traceback
from typing import Callable

from harness.run.cells.accuracy import accuracy_cell
from harness.run.cells.context import CellContext
from harness.run.cells.contracts import check_cell
from harness.run.cells.key_space import key_space_cell
from harness.run.cells.output import CellOutcome, CellOutput, Failure, one_line
from harness.run.cells.security import security_cell
from harness.run.plan import Cell

#: the function that computes each cell kind (``results.KINDS`` is the file schema's list)
CELL_FUNCTIONS: dict[str, Callable[[Cell, CellContext], CellOutput]] = {
    "key_space": key_space_cell,
    "accuracy": accuracy_cell,
    "security": security_cell,
}


def compute_cell(cell: Cell, ctx: CellContext) -> CellOutput:
    """The output of ``cell``; a failure (a plugin's broken contract first of all) raises."""
    check_cell(cell, ctx)
    return CELL_FUNCTIONS[cell.kind](cell, ctx)


def compute_guarded(cell: Cell, ctx: CellContext) -> CellOutcome:
    """:func:`compute_cell`, timed, with its failure caught: a failing cell is recorded and the grid goes on."""
    started = time.perf_counter()
    try:
        return CellOutcome(compute_cell(cell, ctx), None, time.perf_counter() - started)
    except Exception as exc:
        return CellOutcome(None, Failure(one_line(exc), traceback.format_exc()), time.perf_counter() - started)


__all__ = ["CELL_FUNCTIONS", "CellContext", "CellOutcome", "CellOutput", "Failure", "compute_cell", "compute_guarded", "one_line"]
