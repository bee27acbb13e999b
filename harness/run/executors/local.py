"""This machine: every cell in ``workers`` spawned processes (isolated: a crashing cell is one failed
cell), or in this process (``--in-process``: for pdb, and for tests that patch the cells)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import torch

from harness.data import SkippedImageWarning
from harness.run import cells
from harness.run.cells import CellContext, CellOutcome, Failure
from harness.run.executors.base import Finish
from harness.run.executors.schedule import Done, schedule
from harness.run.plan import Cell


class SerialExecutor:
    """One cell after another, in this process (plan order: a dependency comes first): no isolation,
    a cell that kills its process kills the run."""

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        for cell in todo:
            finish(cell, cells.compute_guarded(cell, ctx))


class PoolExecutor:
    """``workers`` spawned processes (no fork of a process whose torch threads already run), each
    with a copy of the context and this process's torch thread count, reused across cells (one
    worker for ``--workers 1``: its datasets stay loaded from cell to cell).

    A worker that dies (a crashing plugin, ``os._exit``, the OOM killer) breaks the pool: a cell
    that was running alone is one failed cell with the reason; several that were running are
    computed again one at a time, each in a pool of its own, so the one that dies again is one
    failed cell and every other cell completes; the cells not started yet go to a fresh pool."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        pending = list(todo)
        while pending:
            suspects, pending = _pool_run(pending, ctx, finish, min(self.workers, len(pending)))
            if len(suspects) == 1:
                finish(suspects[0], CellOutcome(None, Failure(WORKER_DIED, WORKER_DIED), 0.0))
                continue
            for cell in suspects:
                again, _ = _pool_run([cell], ctx, finish, 1)
                if again:
                    finish(cell, CellOutcome(None, Failure(WORKER_DIED, WORKER_DIED), 0.0))


#: the row note of a cell whose worker process died while computing it alone
WORKER_DIED = ("its worker process died while computing it alone (killed by a signal, os._exit or a crash in native code); "
               "the other cells were not affected")


def _pool_run(todo: list[Cell], ctx: CellContext, finish: Finish, workers: int) -> tuple[list[Cell], list[Cell]]:
    """Run ``todo`` in a fresh pool; returns the cells that were running and those not started when
    a worker died (both empty when the pool finished)."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(ctx, torch.get_num_threads(), os.getpid()))
    submitted: dict[Future, Cell] = {}
    finished: set[Cell] = set()

    def submit(cell: Cell) -> Future:
        future = pool.submit(_compute_in_worker, cell)
        submitted[future] = cell
        return future

    def wait_any(futures: list[Future]) -> list[Done]:
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return [(future, future.result()) for future in done]

    def finish_one(cell: Cell, outcome: CellOutcome) -> None:
        finished.add(cell)
        finish(cell, outcome)

    try:
        schedule(todo, submit, wait_any, finish_one, capacity=workers)
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        running = [cell for future, cell in submitted.items() if cell not in finished]
        return running, [cell for cell in todo if cell not in finished and cell not in running]
    except BaseException:  # an interrupt (Ctrl-C, SIGTERM): do not wait for running cells; workers die with us
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [], []


#: the context of a worker process (its datasets and ciphers are shared by the cells it computes)
_WORKER: CellContext | None = None


def _init_worker(ctx: CellContext, threads: int, driver: int) -> None:
    global _WORKER
    die_with_parent(driver)
    torch.set_num_threads(threads)
    # the driver checked every image file before the grid and warned once per unusable one
    warnings.simplefilter("ignore", SkippedImageWarning)
    _WORKER = ctx


def die_with_parent(driver: int) -> None:
    """Ask the kernel to kill this process when the process that spawned it (``driver``) dies, even
    by SIGKILL (Linux's PR_SET_PDEATHSIG; elsewhere nothing): a killed driver leaves no worker behind."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != driver:  # the driver died before the request took effect (we belong to init or a subreaper now)
        os._exit(1)


PR_SET_PDEATHSIG = 1


def _compute_in_worker(cell: Cell) -> CellOutcome:
    """One cell in a worker; a failure is reported to the parent, which records the failed cell."""
    assert _WORKER is not None
    return cells.compute_guarded(cell, _WORKER)
