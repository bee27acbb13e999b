"""The one interface of every executor, apart from the launchers so they can name it."""

from __future__ import annotations

from typing import Callable, Protocol

from harness.run.cells import CellContext, CellOutcome
from harness.run.plan import Cell

#: what an executor calls in the driver process for every computed cell
Finish = Callable[[Cell, CellOutcome], None]


class Executor(Protocol):
    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        """Compute every cell of ``todo`` (a cell after the one it depends on) and ``finish`` it."""
