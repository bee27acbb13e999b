"""Where and how the cells to do are computed, behind one interface: ``Executor.run(todo, ctx,
finish)``.  An executor computes each cell with :func:`harness.run.cells.compute_guarded` on a
copy of ``ctx`` and hands every outcome to ``finish`` in this process, which alone writes
records.  It never sees the runner.

- ``local``: ``workers`` spawned processes, each cell isolated, or serial in this process (:mod:`.local`);
- ``ray``: one Ray task per cell (:mod:`.ray`, imports Ray only when it runs: the ``ray`` extra);
- ``torchrun``: rank 0 of a torchrun launch, accuracy cells trained by every rank (:mod:`.torchrun`).
"""

from __future__ import annotations

from harness.run.executors.base import Executor, Finish
from harness.run.executors.local import PoolExecutor, SerialExecutor
from harness.run.executors.ray import RayExecutor
from harness.run.executors.torchrun import TorchrunExecutor


def make_executor(name: str, *, workers: int = 1, address: str | None = None, in_process: bool = False) -> Executor:
    """The executor a command line names: ``local`` (``workers`` processes, or this one with
    ``in_process``), ``ray`` or ``torchrun``."""
    if name == "local":
        return SerialExecutor() if in_process else PoolExecutor(workers)
    if name == "ray":
        return RayExecutor(address)
    if name == "torchrun":
        return TorchrunExecutor()
    raise ValueError(f"unknown executor {name!r}; choose local, ray or torchrun")


__all__ = ["Executor", "Finish", "PoolExecutor", "RayExecutor", "SerialExecutor", "TorchrunExecutor", "make_executor"]
