"""Where and how the cells to do are computed, behind one interface: ``Executor.run(todo, ctx,
finish)``.  An executor computes each cell with :func:`harness.run.cells.compute_guarded` on a
copy of ``ctx`` and hands every outcome to ``finish`` in this process, which alone writes
records.  It never sees the runner.

- ``local``: serial in this process, or ``workers`` spawned processes (:mod:`.local`);
- ``ray``: one Ray task per cell (:mod:`.ray`, needs the ``ray`` extra);
- ``torchrun``: rank 0 of a torchrun launch, accuracy cells trained by every rank (:mod:`.torchrun`).
"""

from __future__ import annotations

from typing import Callable, Protocol

from harness.run.cells import CellContext, CellOutcome
from harness.run.plan import Cell

#: what an executor calls in the driver process for every computed cell
Finish = Callable[[Cell, CellOutcome], None]


class Executor(Protocol):
    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        """Compute every cell of ``todo`` (a cell after the one it depends on) and ``finish`` it."""


def make_executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    """The executor a command line names: ``local`` (``workers`` processes), ``ray`` or ``torchrun``."""
    if name == "local":
        from harness.run.executors.local import PoolExecutor, SerialExecutor

        return PoolExecutor(workers) if workers > 1 else SerialExecutor()
    if name == "ray":
        from harness.run.executors.ray import RayExecutor

        return RayExecutor(address)
    if name == "torchrun":
        from harness.run.executors.torchrun import TorchrunExecutor

        return TorchrunExecutor()
    raise ValueError(f"unknown executor {name!r}; choose local, ray or torchrun")
