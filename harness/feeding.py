"""The training loop's data path: plain uint8 batches made on the device, with no per-step host sync.

The stored images (CIFAR at 32 x 32: 150 MB) stay on the device when they fit; a step then
gathers its batch, resizes it (:func:`harness.data.resize_images`), crops and flips it there,
all from tensors moved once per epoch.  A split too large for the device stays in host memory
and each batch is copied from pinned memory on a side stream, issued one step ahead, so the
copy overlaps the previous step's compute.  The random numbers come from a CPU generator, drawn
once per epoch, so a run is the same on any device and resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from harness.data import ImageDataset

#: stored images stay on a CUDA device when they take at most this share of its free memory
RESIDENT_SHARE = 0.25


@dataclass(frozen=True)
class Augmentation:
    """Per-image random crop offsets (zero padding ``padding``) and horizontal flips, for one epoch.

    Entry i belongs to the i-th image of the epoch's order; ``top``/``left`` lie in ``0..2*padding``.
    """

    top: torch.Tensor
    left: torch.Tensor
    flip: torch.Tensor
    padding: int

    @classmethod
    def draw(cls, n: int, padding: int, generator: torch.Generator) -> Augmentation:
        top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
        flip = torch.rand(n, generator=generator) < 0.5
        return cls(top, left, flip, padding)

    def to(self, device: torch.device) -> Augmentation:
        return Augmentation(self.top.to(device), self.left.to(device), self.flip.to(device), self.padding)

    def part(self, start: int, stop: int) -> Augmentation:
        return Augmentation(self.top[start:stop], self.left[start:stop], self.flip[start:stop], self.padding)

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Crop and flip a batch ``[B, C, H, W]`` (B = this part's length) as one gather on its device."""
        batch, channels, height, width = images.shape
        padding = self.padding
        padded = F.pad(images, (padding, padding, padding, padding))
        device = images.device
        cols = torch.arange(width, device=device).expand(batch, width)
        cols = torch.where(self.flip[:, None].to(device), width - 1 - cols, cols) + self.left[:, None].to(device)
        rows = torch.arange(height, device=device) + self.top[:, None].to(device)
        index = (rows[:, :, None] * padded.shape[-1] + cols[:, None, :]).reshape(batch, 1, -1)
        out = padded.flatten(2).gather(2, index.expand(batch, channels, -1))
        return out.view(batch, channels, height, width)


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of zero-padded images and a random horizontal flip, per image (one draw)."""
    return Augmentation.draw(int(images.shape[0]), padding, generator).apply(images)


class DeviceFeed:
    """Plain uint8 batches of ``data`` at its ``image_size`` on ``device``, with their labels.

    ``resident``: the stored images live on the device (always on the CPU); otherwise batches
    are copied from pinned host memory on a side CUDA stream, one step ahead.
    """

    def __init__(self, data: ImageDataset, device: torch.device) -> None:
        self.data, self.device = data, device
        self.labels = data.labels.to(device)
        self.resident = device.type != "cuda" or _fits(data.stored, device)
        self.stored = data.stored.to(device) if self.resident else data.stored
        self._stream = None if self.resident else torch.cuda.Stream(device)

    def epoch(self, order: torch.Tensor, batch_size: int, first_step: int, steps: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(indices on the CPU, plain images, labels)`` for steps ``first_step..steps-1`` of an epoch's ``order``."""
        on_device = order.to(self.device)
        spans = [(s * batch_size, (s + 1) * batch_size) for s in range(first_step, steps)]
        if self.resident:
            for start, stop in spans:
                index = on_device[start:stop]
                yield order[start:stop], self.data.batch(index, stored=self.stored), self.labels[index]
            return
        pending = self._copy(order, *spans[0]) if spans else None
        compute = torch.cuda.current_stream(self.device)
        for k, (start, stop) in enumerate(spans):
            assert pending is not None
            current, copied = pending
            pending = self._copy(order, *spans[k + 1]) if k + 1 < len(spans) else None  # overlaps this step
            compute.wait_event(copied)  # this batch's copy only, not the next one's
            current.record_stream(compute)
            index = on_device[start:stop]
            yield order[start:stop], self.data.batch(torch.arange(stop - start, device=self.device), stored=current), self.labels[index]

    def _copy(self, order: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, torch.cuda.Event]:
        """Issue the copy of one batch's stored images on the side stream (pinned, non-blocking)."""
        host = self.data.stored[order[start:stop]].pin_memory()
        with torch.cuda.stream(self._stream):
            on_device = host.to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self._stream)
        return on_device, copied


def _fits(stored: torch.Tensor, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return stored.numel() * stored.element_size() <= RESIDENT_SHARE * free
