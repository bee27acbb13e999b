"""This machine: every cell in this process, or in ``workers`` spawned processes."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch

from harness.run import cells
from harness.run.cells import CellContext, CellOutcome
from harness.run.executors.base import Finish
from harness.run.executors.schedule import Done, schedule
from harness.run.plan import Cell


class SerialExecutor:
    """One cell after another, in this process (plan order: a dependency comes first)."""

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        for cell in todo:
            finish(cell, cells.compute_guarded(cell, ctx))


class PoolExecutor:
    """``workers`` spawned processes (no fork of a process whose torch threads already run), each
    with a copy of the context and this process's torch thread count."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        if len(todo) < 2:
            return SerialExecutor().run(todo, ctx, finish)
        context = multiprocessing.get_context("spawn")
        init = (ctx, torch.get_num_threads())
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker, initargs=init)

        def wait_any(futures: list[Future]) -> list[Done]:
            finished, _ = wait(futures, return_when=FIRST_COMPLETED)
            return [(future, future.result()) for future in finished]

        try:
            schedule(todo, lambda cell: pool.submit(_compute_in_worker, cell), wait_any, finish, capacity=self.workers)
        except BaseException:  # an interrupt (Ctrl-C, SIGTERM): do not wait for running cells; workers die with us
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


#: the context of a worker process (its datasets and ciphers are shared by the cells it computes)
_WORKER: CellContext | None = None


def _init_worker(ctx: CellContext, threads: int) -> None:
    global _WORKER
    die_with_parent()
    torch.set_num_threads(threads)
    _WORKER = ctx


def die_with_parent() -> None:
    """Ask the kernel to kill this process when the process that spawned it dies, even by SIGKILL
    (Linux's PR_SET_PDEATHSIG; elsewhere nothing): a killed driver leaves no worker behind."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the driver died before the request took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


def _compute_in_worker(cell: Cell) -> CellOutcome:
    """One cell in a worker; a failure is reported to the parent, which records the failed cell."""
    assert _WORKER is not None
    return cells.compute_guarded(cell, _WORKER)
