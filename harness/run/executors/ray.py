"""The Ray executor: one Ray task per cell, recorded by the driver.

Imported only for ``--executor ray``, so the default install never needs Ray (the optional
extra ``scramblebench[ray]`` installs it).  Each task computes one cell in a Ray worker with the
resources that cell needs (``num_gpus=1`` for cells that train a network when the device is
cuda, a quarter GPU for other security cells there, one CPU otherwise); the driver submits a
cell only once the cell it depends on (``vit_keyed`` -> the plain ``vit``) has finished, so no
two tasks train the same cached model, and it writes every record itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from harness.registry import attacks
from harness.run import cells
from harness.run.cells import CellContext, CellOutcome, Failure, one_line
from harness.run.executors.base import Finish
from harness.run.executors.schedule import Done, schedule
from harness.run.identity import REPO_ROOT
from harness.run.plan import Cell

RAY_MISSING = "--executor ray needs Ray: install the extra with pip install 'scramblebench[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or ImportError with the install hint."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"{RAY_MISSING} ({exc})") from None
    return ray


def resources(device: str, cell: Cell) -> dict[str, float]:
    """The Ray resources of one cell's task."""
    if not str(device).startswith("cuda"):
        return {"num_cpus": 1}
    if cell.kind == "accuracy" or (cell.kind == "security" and getattr(attacks.get(cell.attack), "learned", False)):
        return {"num_cpus": 1, "num_gpus": 1}
    if cell.kind == "security":
        return {"num_cpus": 1, "num_gpus": 0.25}
    return {"num_cpus": 1}


#: the context of this Ray worker process, by its settings (Ray reuses worker processes, and
#: the datasets and ciphers a context caches serve the next cell of the same run)
_CONTEXTS: dict[str, CellContext] = {}


def compute_cell(ctx: CellContext, cell: Cell, threads: int, repo_root: str) -> CellOutcome:
    """A Ray task: compute one cell with a copy of the driver's context."""
    if Path(REPO_ROOT) != Path(repo_root):
        raise RuntimeError(
            f"this Ray worker imports scramblebench from {REPO_ROOT}, the driver from {repo_root}: "
            "install the same code on every node (or start Ray with PYTHONPATH set to the driver's checkout)"
        )
    key = json.dumps([ctx.config, str(ctx.run_dir), ctx.device, ctx.refresh_cache], sort_keys=True, default=str)
    ctx = _CONTEXTS.setdefault(key, ctx)
    if threads:
        torch.set_num_threads(threads)
    return cells.compute_guarded(cell, ctx)


class RayExecutor:
    """Joins ``address`` (else the running or a new local Ray instance) for one run."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            self._start(ray)
        try:
            task = ray.remote(compute_cell)
            shipped = CellContext(ctx.config, ctx.run_dir.resolve(), ctx.device, ctx.refresh_cache, ctx.log_restorations)
            threads = torch.get_num_threads()

            def submit(cell: Cell) -> Any:
                return task.options(**resources(ctx.device, cell), max_retries=0).remote(shipped, cell, threads, str(REPO_ROOT))

            def wait_any(running: list[Any]) -> list[Done]:
                ready, _ = ray.wait(running, num_returns=1)
                return [(ref, _outcome(ray, ref)) for ref in ready]

            schedule(todo, submit, wait_any, finish)
        finally:
            if started_here:
                ray.shutdown()

    def _start(self, ray: Any) -> None:
        env = {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}  # workers import this checkout, whatever else is on their path
        try:
            if self.address:
                ray.init(address=self.address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False)
        except Exception as exc:  # a user error (wrong address, no cluster there): one line, exit 2
            where = f"join the Ray cluster at {self.address}" if self.address else "start a local Ray instance"
            raise ValueError(f"--executor ray: cannot {where} ({type(exc).__name__}: {exc})") from None


def _outcome(ray: Any, ref: Any) -> CellOutcome:
    try:
        return ray.get(ref)
    except Exception as exc:  # the task itself died (worker crash, out of memory)
        return CellOutcome(None, Failure(one_line(exc), repr(exc)), float("nan"))
