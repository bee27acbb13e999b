"""One run on several processes under ``torchrun``: every accuracy cell trains on all of them (DDP).

``torchrun --nproc_per_node N run_bench.py ...`` starts N copies of the runner.  Rank 0 is the
runner proper: it decides which cells are to do, writes every record, run.json and the report,
and computes the key-space and security cells alone (:class:`TorchrunExecutor`).  Every rank
trains each accuracy cell together (:func:`harness.training.train` under DistributedDataParallel,
each rank on 1/N of every batch), so one cell's training runs on N GPUs, or N CPU processes with
gloo.  The ranks agree on the cells to do (rank 0 broadcasts their hashes; accuracy cells run
first, so the other ranks are done before rank 0's own cells) and meet after every accuracy
cell, so a model that rank 0 has just cached is seen by all of them before the next cell looks
for it.  A failed accuracy cell stops the run (rank 0 records it first): its collectives can no
longer pair up.  Collectives go through :mod:`harness.world`, so a fake world tests this logic.
"""

from __future__ import annotations

import os

import torch

from harness.run import cells
from harness.run.cells import CellContext
from harness.run.executors.base import Finish
from harness.run.identity import identity
from harness.run.plan import Cell
from harness.world import World, current_world


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> tuple[World, str]:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU); ``(world, device)``, with
    each rank on its own local GPU (``cuda:LOCAL_RANK``) when ``device`` is CUDA."""
    import torch.distributed as dist

    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return current_world(), device


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class DistributedCellFailed(RuntimeError):
    """An accuracy cell failed on this rank: the run stops, since the ranks' collectives no longer pair."""


def agreed(cells_here: list[Cell], config: dict, world: World, todo: list[Cell] | None) -> list[Cell]:
    """Rank 0's ``todo`` on every rank (cells named by their hashes), accuracy cells first (in
    their planned order, so a plain ``vit`` still precedes ``vit_keyed``): the other ranks are
    done once the last one is trained and never wait through rank 0's own cells."""
    hashes = world.broadcast(None if todo is None else [identity(config, c) for c in todo])
    by_hash = {identity(config, c): c for c in cells_here}
    chosen = [by_hash[h] for h in hashes]
    return [c for c in chosen if c.kind == "accuracy"] + [c for c in chosen if c.kind != "accuracy"]


class TorchrunExecutor:
    """Rank 0: compute every cell to do (accuracy cells together with the other ranks) and record it."""

    def __init__(self, world: World | None = None) -> None:
        self.world = world

    def run(self, todo: list[Cell], ctx: CellContext, finish: Finish) -> None:
        world = self.world or current_world()
        for cell in agreed(todo, ctx.config, world, todo):
            outcome = cells.compute_guarded(cell, ctx)
            finish(cell, outcome)
            if cell.kind == "accuracy":
                if outcome.failure is not None:
                    raise DistributedCellFailed(f"{cell.label} failed on rank 0 ({outcome.failure.message}); recorded, run stopped")
                world.barrier()


def follow(planned: list[Cell], ctx: CellContext, world: World) -> None:
    """Ranks > 0: train each accuracy cell of rank 0's list with it; write nothing."""
    for cell in agreed(planned, ctx.config, world, None):
        if cell.kind != "accuracy":
            break
        failure = cells.compute_guarded(cell, ctx).failure
        if failure is not None:
            raise DistributedCellFailed(f"{cell.label} failed on rank {world.rank}: {failure.message}")
        world.barrier()
