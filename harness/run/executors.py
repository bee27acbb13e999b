"""The Ray executor: one Ray task per cell, recorded by the driver.

Imported only for ``--executor ray``, so the default install never needs Ray (the optional
extra ``scramblebench[ray]`` installs it).  Each task computes one cell in a Ray worker with the
resources that cell needs (``num_gpus=1`` for cells that train a network when the device is
cuda, a quarter GPU for other security cells there, one CPU otherwise); the driver submits a
cell only once the cell it depends on (``vit_keyed`` -> the plain ``vit``) has finished, so no
two tasks train the same cached model, and it writes every record itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness.run.bench import Runner
    from harness.run.plan import Cell

RAY_MISSING = "--executor ray needs Ray: install the extra with pip install 'scramblebench[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or ImportError with the install hint."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"{RAY_MISSING} ({exc})") from None
    return ray


def resources(runner: Runner, cell: Cell) -> dict[str, float]:
    """The Ray resources of one cell's task."""
    from harness.registry import attacks

    if not str(runner.device).startswith("cuda"):
        return {"num_cpus": 1}
    if cell.kind == "accuracy" or (cell.kind == "security" and getattr(attacks.get(cell.attack), "learned", False)):
        return {"num_cpus": 1, "num_gpus": 1}
    if cell.kind == "security":
        return {"num_cpus": 1, "num_gpus": 0.25}
    return {"num_cpus": 1}


#: the runner of this Ray worker process, by its settings (Ray reuses worker processes)
_RUNNERS: dict[str, Runner] = {}


def compute_cell(settings: dict[str, Any], cell: Cell) -> tuple[Any, Any, float]:
    """A Ray task: compute one cell with a runner built from ``settings``; (output, failure, seconds)."""
    import json

    import torch

    from harness.run import bench
    from harness.run.identity import REPO_ROOT

    if Path(REPO_ROOT) != Path(settings["repo_root"]):
        raise RuntimeError(
            f"this Ray worker imports scramblebench from {REPO_ROOT}, the driver from {settings['repo_root']}: "
            "install the same code on every node (or start Ray with PYTHONPATH set to the driver's checkout)"
        )
    key = json.dumps({k: v for k, v in settings.items() if k != "threads"}, sort_keys=True, default=str)
    if key not in _RUNNERS:
        _RUNNERS[key] = bench.Runner(settings["config"], settings["out"], device=settings["device"], refresh_cache=settings["refresh_cache"])
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])
    return _RUNNERS[key].compute_guarded(cell)


def run_ray(runner: Runner, todo: list[Cell], finish: Callable[..., None], *, address: str | None = None) -> None:
    """Run ``todo`` as Ray tasks (joining ``address``, else the running or a new local instance)."""
    import torch

    from harness.run import bench
    from harness.run.identity import REPO_ROOT

    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # workers import this checkout, whatever else is on their path
        env = {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}
        try:
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, runtime_env=env, log_to_driver=False)
        except Exception as exc:  # a user error (wrong address, no cluster there): one line, exit 2
            where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
            raise ValueError(f"--executor ray: cannot {where} ({type(exc).__name__}: {exc})") from None
    try:
        settings = {
            "config": runner.config,
            "out": str(Path(runner.store.folder).resolve()),
            "device": runner.device,
            "refresh_cache": runner.refresh_cache,
            "threads": torch.get_num_threads(),
            "repo_root": str(REPO_ROOT),
        }
        task = ray.remote(compute_cell)
        refs: dict[Any, Any] = {}

        def submit(cell: Cell) -> Any:
            ref = task.options(**resources(runner, cell), max_retries=0).remote(settings, cell)
            refs[ref] = cell
            return ref

        def wait_any(running: list[Any]) -> list[tuple[Any, Any]]:
            ready, _ = ray.wait(running, num_returns=1)
            done = []
            for ref in ready:
                try:
                    done.append((ref, ray.get(ref)))
                except Exception as exc:  # the task itself died (worker crash, out of memory)
                    done.append((ref, (None, (bench._one_line(exc), repr(exc)), float("nan"))))
            return done

        runner.schedule(todo, submit, wait_any, finish)
    finally:
        if started_here:
            ray.shutdown()
