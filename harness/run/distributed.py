"""One run on several processes under ``torchrun``: every accuracy cell trains on all of them (DDP).

``torchrun --nproc_per_node N run_bench.py ...`` starts N copies of the runner.  Rank 0 is the
runner proper: it decides which cells are to do, writes every record, run.json and the report,
and computes the key-space and security cells alone.  Every rank trains each accuracy cell
together (:func:`harness.training._train` under DistributedDataParallel, each rank on 1/N of
every batch), so one cell's training runs on N GPUs, or N CPU processes with gloo.  The ranks
agree on the cells to do (rank 0 broadcasts them) and meet after every accuracy cell, so a
model that rank 0 has just cached is seen by all of them before the next cell looks for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    from harness.run.bench import Cell, Runner


def launched_by_torchrun() -> bool:
    """Whether this process is one of several that ``torchrun`` started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> tuple[int, int, str]:
    """Join torchrun's process group (NCCL on CUDA, gloo on the CPU); ``(rank, world, device)``,
    with each rank on its own local GPU (``cuda:LOCAL_RANK``) when ``device`` is CUDA."""
    import torch.distributed as dist

    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _agreed(cells: list[Cell], runner: Runner, todo: list[Cell] | None) -> list[Cell]:
    """Rank 0's ``todo`` on every rank (cells named by their hashes)."""
    import torch.distributed as dist

    message = [None if todo is None else [runner.identity(c) for c in todo]]
    dist.broadcast_object_list(message, src=0)
    by_hash = {runner.identity(c): c for c in cells}
    return [by_hash[h] for h in message[0]]


def run_leader(runner: Runner, cells: list[Cell], todo: list[Cell], finish: Callable[..., None]) -> None:
    """Rank 0: compute every cell to do (accuracy cells together with the other ranks) and record it."""
    import torch.distributed as dist

    for cell in _agreed(cells, runner, todo):
        finish(cell, *runner.compute_guarded(cell))
        if cell.kind == "accuracy":
            dist.barrier()


def run_follower(runner: Runner, cells: list[Cell]) -> None:
    """Ranks > 0: train each accuracy cell of rank 0's list with it; write nothing."""
    import torch.distributed as dist

    for cell in _agreed(cells, runner, None):
        if cell.kind == "accuracy":
            runner.compute_guarded(cell)
            dist.barrier()
