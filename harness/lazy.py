"""Image collections computed a chunk at a time, so no step holds a whole split at paper size.

A security cell at the paper's size sees 60,000 ciphertexts of 224 x 224 (9 GB as uint8, 72 GB
as float64) made from CIFAR images stored at 32 x 32 (180 MB).  :class:`LazyImages` keeps the
small store and a recipe (resize, encrypt, view) and hands out real uint8 tensors only for the
indices asked for: a slice or an index tensor gives a tensor, :meth:`chunks` gives bounded
tensors in order, and :meth:`head`/:meth:`concat`/:meth:`map` build further lazy collections.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Callable, Iterator, Sequence

import torch

#: images made at once by :meth:`LazyImages.chunks` unless told otherwise
DEFAULT_CHUNK = 256

Producer = Callable[[torch.Tensor], torch.Tensor]


class LazyImages:
    """``count`` uint8 images of shape ``image_shape``, made on demand by ``produce(indices)``.

    ``produce`` takes a CPU int64 tensor of indices in ``range(count)`` and returns the uint8
    images ``[len(indices), *image_shape]`` (on any device).  It must be a pure function of the
    indices: the same index always gives the same image.
    """

    dtype = torch.uint8
    ndim = 4

    def __init__(self, count: int, image_shape: Sequence[int], produce: Producer) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        if len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
        self.count, self.image_shape, self._produce = count, tuple(int(v) for v in image_shape), produce

    @classmethod
    def of(cls, images: torch.Tensor) -> LazyImages:
        """A tensor as a lazy collection (its rows, indexed)."""
        return cls(int(images.shape[0]), tuple(images.shape[1:]), lambda index: images[index.to(images.device)])

    # -- the tensor-like surface the attacks read ----------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.count, *self.image_shape))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: slice | torch.Tensor) -> torch.Tensor:
        """The images at ``index`` (a slice with step 1, or an index tensor) as one tensor."""
        if isinstance(index, slice):
            start, stop, step = index.indices(self.count)
            if step != 1:
                raise ValueError(f"LazyImages slices take step 1, got {step}")
            return self.take(torch.arange(start, max(start, stop)))
        if isinstance(index, torch.Tensor) and index.ndim == 1 and not index.is_floating_point() and index.dtype != torch.bool:
            return self.take(index)
        raise TypeError(f"LazyImages is indexed by a slice or a 1-D integer tensor (not a mask), got {type(index).__name__}")

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """The images at the integer positions ``index`` (negative positions count from the end)."""
        index = index.detach().to("cpu", torch.int64)
        index = torch.where(index < 0, index + self.count, index)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.count):
            raise IndexError(f"index out of range for {self.count} images")
        images = self._produce(index)
        if images.dtype != torch.uint8 or tuple(images.shape) != (index.numel(), *self.image_shape):
            raise RuntimeError(
                f"LazyImages producer returned {images.dtype} {tuple(images.shape)}, "
                f"expected uint8 {(index.numel(), *self.image_shape)}"
            )
        return images

    def chunks(self, size: int | None = None) -> Iterator[torch.Tensor]:
        """The images in order, at most ``size`` (None: :data:`DEFAULT_CHUNK`) at a time."""
        size = DEFAULT_CHUNK if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"chunk size must be a positive integer, got {size!r}")
        for start in range(0, self.count, size):
            yield self.take(torch.arange(start, min(start + size, self.count)))

    split = chunks  # ``tensor.split(n)`` spelled the same way, so attacks stream either

    def materialise(self) -> torch.Tensor:
        """All images as one tensor (only for collections known to be small)."""
        return self.take(torch.arange(self.count))

    # -- building further collections -----------------------------------------------------
    def head(self, count: int) -> LazyImages:
        """The first ``count`` images (all of them when there are fewer), still lazy."""
        count = max(0, min(int(count), self.count))
        return LazyImages(count, self.image_shape, self._produce)

    def map(self, transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], image_shape: Sequence[int] | None = None) -> LazyImages:
        """Apply ``transform(images, indices)`` to every produced batch (e.g. encrypt with image ids).

        ``image_shape``: the shape ``transform`` gives one image; None: the same as now.
        """
        produce = self._produce
        return LazyImages(
            self.count, self.image_shape if image_shape is None else image_shape, lambda index: transform(produce(index), index)
        )

    def to(self, device: str | torch.device) -> LazyImages:
        """The same images, produced on ``device``."""
        device = torch.device(device)
        return self.map(lambda images, _: images.to(device))

    def cpu(self) -> LazyImages:
        return self.to("cpu")

    @staticmethod
    def concat(parts: Sequence[LazyImages | torch.Tensor]) -> LazyImages:
        """The images of ``parts`` one after another (all of one image shape)."""
        lazies = [p if isinstance(p, LazyImages) else LazyImages.of(p) for p in parts]
        if not lazies:
            raise ValueError("concat needs at least one collection")
        shapes = {p.image_shape for p in lazies}
        if len(shapes) != 1:
            raise ValueError(f"concat needs one image shape, got {sorted(shapes)}")
        offsets = torch.tensor([0] + [len(p) for p in lazies]).cumsum(0)

        def produce(index: torch.Tensor) -> torch.Tensor:
            part = torch.bucketize(index, offsets[1:], right=True)
            pieces, order = [], []
            for k in part.unique().tolist():
                where = torch.nonzero(part == k).flatten()
                pieces.append(lazies[k].take(index[where] - offsets[k]))
                order.append(where)
            if not pieces:
                return torch.empty((0, *lazies[0].image_shape), dtype=torch.uint8)
            stacked = torch.cat([p.to(pieces[0].device) for p in pieces])
            return stacked[torch.argsort(torch.cat(order)).to(stacked.device)]

        return LazyImages(int(offsets[-1]), lazies[0].image_shape, produce)

    def __repr__(self) -> str:
        return f"LazyImages({self.count} x {self.image_shape})"


def as_lazy(images: torch.Tensor | LazyImages) -> LazyImages:
    """``images`` as a :class:`LazyImages` (a tensor is wrapped, a lazy collection kept)."""
    return images if isinstance(images, LazyImages) else LazyImages.of(images)


def release_freed_memory() -> None:
    """Hand memory freed by finished chunks back to the operating system (glibc's ``malloc_trim``).

    Chunks of a few MB to tens of MB fall under glibc's adaptive mmap threshold, so once freed
    they stay in the heap between small live tensors; a streamed cell's resident size then creeps
    up to about twice its working set (2.2 GB instead of 1.4 GB for a 224 x 224 security cell).
    Trimming after each chunk keeps it at the working set.  A no-op where libc has no ``malloc_trim``.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
