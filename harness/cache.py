"""On-disk cache of trained networks (classifiers and learned attacks).

An entry's file name is a content hash of everything that determines it, so a changed preset,
seed, cipher or code version never reuses a stale model.  Files are written atomically (temp
file, then ``os.replace``) and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from harness.lazy import LazyImages

CACHE_FORMAT = 1


class CorruptCacheError(RuntimeError):
    """A cache file exists but cannot be read; the message names the file and the fix."""


def cache_key(**parts: Any) -> str:
    """Stable hex digest of JSON-serialisable ``parts`` (sorted keys, strict JSON)."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def tensor_digest(*tensors: torch.Tensor | LazyImages) -> str:
    """Content digest of tensors (dtype, shape and bytes): what cache keys record of data, never keys.

    A :class:`LazyImages` is read a chunk at a time and digests like the tensor it stands for.
    """
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        digest.update(f"{tensor.dtype}:{tuple(tensor.shape)};".encode())
        for part in tensor.chunks() if isinstance(tensor, LazyImages) else (tensor,):
            digest.update(part.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically save a dict of tensors and plain values with ``torch.save``."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; CorruptCacheError if unreadable."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CorruptCacheError(
            f"cache file {path} is corrupt or unreadable ({type(exc).__name__}: {exc}); "
            "delete it or rerun with --refresh-cache"
        ) from exc
    if not isinstance(state, dict):
        raise CorruptCacheError(
            f"cache file {path} does not hold a checkpoint dict; delete it or rerun with --refresh-cache"
        )
    return state
