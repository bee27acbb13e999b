"""The processes one computation runs on, behind one object: a single process, or the ranks of a
torch.distributed process group (``torchrun``).  The single-process form makes every collective
a no-op, so training and the torchrun executor never branch on the world size.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import torch
from torch import nn

T = TypeVar("T")


class World(Protocol):
    """Rank, size and the few collectives the benchmark needs."""

    rank: int
    size: int

    @property
    def is_leader(self) -> bool: ...

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over the ranks (every rank takes part)."""

    def barrier(self) -> None:
        """Wait until every rank is here."""

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` (a picklable object) on every rank."""

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` as this world trains it (DistributedDataParallel over several ranks)."""


class SingleProcess:
    """One process: rank 0 of 1; every collective is the identity."""

    rank, size = 0, 1

    @property
    def is_leader(self) -> bool:
        return True

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def barrier(self) -> None:
        pass

    def broadcast(self, value: T) -> T:
        return value

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        return model


class TorchDistributed:
    """The initialised torch.distributed process group of this process."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        total = value.clone()
        self._dist.all_reduce(total)
        return total / self.size

    def barrier(self) -> None:
        self._dist.barrier()

    def broadcast(self, value: Any) -> Any:
        message = [value]
        self._dist.broadcast_object_list(message, src=0)
        return message[0]

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def current_world() -> World:
    """The torch.distributed group this process belongs to, else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return TorchDistributed()
    return SingleProcess()
