"""One run on several processes under ``torchrun``: every accuracy cell trains on all of them (DDP).

``torchrun --nproc_per_node N run_bench.py ...`` starts N copies of the runner.  Rank 0 is the
runner proper: it decides which cells are to do, writes every record, run.json and the report,
and computes the key-space and security cells alone.  Every rank trains each accuracy cell
together (:func:`harness.training._train` under DistributedDataParallel, each rank on 1/N of
every batch), so one cell's training runs on N GPUs, or N CPU processes with gloo.  The ranks
agree on the cells to do (rank 0 broadcasts them; accuracy cells run first, so the other ranks
are done before rank 0's own cells) and meet after every accuracy cell, so a model that rank 0
has just cached is seen by all of them before the next cell looks for it.  A failed accuracy
cell stops the run (rank 0 records it first): its collectives can no longer pair up.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:
    from harness.run.bench import Runner
    from harness.run.plan import Cell


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
    """Rank 0's ``todo`` on every rank (cells named by their hashes), accuracy cells first (in
    their planned order, so a plain ``vit`` still precedes ``vit_keyed``): the other ranks are
    done once the last one is trained and never wait through rank 0's own cells."""
    import torch.distributed as dist

    message = [None if todo is None else [runner.identity(c) for c in todo]]
    dist.broadcast_object_list(message, src=0)
    by_hash = {runner.identity(c): c for c in cells}
    agreed = [by_hash[h] for h in message[0]]
    return [c for c in agreed if c.kind == "accuracy"] + [c for c in agreed if c.kind != "accuracy"]


class DistributedCellFailed(RuntimeError):
    """An accuracy cell failed on this rank: the run stops, since the ranks' collectives no longer pair."""


def run_leader(runner: Runner, cells: list[Cell], todo: list[Cell], finish: Callable[..., None]) -> None:
    """Rank 0: compute every cell to do (accuracy cells together with the other ranks) and record it."""
    import torch.distributed as dist

    for cell in _agreed(cells, runner, todo):
        output, failure, elapsed = runner.compute_guarded(cell)
        finish(cell, output, failure, elapsed)
        if cell.kind == "accuracy":
            if failure is not None:
                raise DistributedCellFailed(f"{cell.label} failed on rank 0 ({failure[0]}); recorded, run stopped")
            dist.barrier()


def run_follower(runner: Runner, cells: list[Cell]) -> None:
    """Ranks > 0: train each accuracy cell of rank 0's list with it; write nothing."""
    import torch.distributed as dist

    for cell in _agreed(cells, runner, None):
        if cell.kind != "accuracy":
            break
        _, failure, _ = runner.compute_guarded(cell)
        if failure is not None:
            raise DistributedCellFailed(f"{cell.label} failed on rank {dist.get_rank()}: {failure[0]}")
        dist.barrier()
