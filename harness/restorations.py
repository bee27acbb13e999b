"""The restoration log of a run folder (``--log-restorations``): every image every security cell
restored, one archive per cell, and an index of the archives.

``restorations/<dataset>/<cipher>__<attack>.npz`` holds ``restored`` (uint8 ``[N, C, H, W]``, as
the attack output them), ``image_id`` (the index of each image in the victim's test split, the
``image_id`` of per_image.csv), the cell's per-image scores as ``score_<per_image.csv metric>``
(``score_ssim``, ``score_psnr``, ``score_ssim_invariant``...), and ``dataset``, ``cipher``,
``attack``, ``threat_model``, ``cell_hash`` and ``shape``.  Never a key.  ``restorations/index.csv`` lists every logged
cell of the run's configuration: its file, coordinates, threat model, cell hash and image count.

One compressed ``.npz`` per cell rather than PNGs: a cell's log is written atomically (whole or
absent), its images load in one call with their ids and scores aligned by row, uint8 keeps them
exact, and a paper-sized cell is one file rather than ten thousand.  Files go through
:meth:`harness.results.ResultStore.write_bytes` (atomic, 0600 in 0700 folders): restorations
are the victim's images as far as the attack recovered them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from harness.results import RESTORATIONS_DIR, ResultStore

INDEX_FILE = "index.csv"
INDEX_COLUMNS = ("file", "dataset", "cipher", "attack", "threat_model", "cell_hash", "images", "channels", "height", "width")


@dataclass
class Restorations:
    """What a security cell restored, for the log: every evaluated image, in order."""

    images: np.ndarray  # uint8 [N, C, H, W]
    image_ids: np.ndarray  # int64 [N]: index in the victim's test split
    threat_model: str
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # per_image.csv metric -> [N]


class RestorationLog:
    """Writes, checks and indexes the restoration archives of one run folder."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self.folder = store.folder / RESTORATIONS_DIR
        self.index_path = self.folder / INDEX_FILE
        self._headers: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}  # by (mtime, size)

    def path(self, cell: Mapping[str, Any]) -> Path:
        return self.folder / str(cell["dataset"]) / f"{cell['cipher']}__{cell['attack']}.npz"

    def save(self, cell: Mapping[str, Any], cell_hash: str, restorations: Restorations) -> Path:
        """Write ``cell``'s archive atomically (before its record, so a finished record never
        lacks a log it was computed with)."""
        images = np.asarray(restorations.images)
        ids = np.asarray(restorations.image_ids, dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4 or ids.shape != (images.shape[0],):
            raise ValueError(f"restorations must be uint8 [N, C, H, W] with N image ids, got {images.dtype} {images.shape} and {ids.shape}")
        identity = {key: np.asarray(str(cell[key])) for key in ("dataset", "cipher", "attack")}
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, restored=images, image_id=ids, shape=np.asarray(images.shape, dtype=np.int64), cell_hash=np.asarray(cell_hash),
            threat_model=np.asarray(restorations.threat_model), **identity,
            **{f"score_{name}": np.asarray(values, dtype=np.float64) for name, values in restorations.scores.items()},
        )
        return self.store.write_bytes(self.path(cell), buffer.getvalue())

    def copy_from(self, shards: Iterable[Path]) -> int:
        """Copy the archives of the ``shards`` run folders here (``merge``; an archive newer than
        the one here wins, as records do); the index then lists those of the merged records."""
        copied = 0
        for shard in shards:
            source = Path(shard) / RESTORATIONS_DIR
            for path in sorted(source.glob("*/*.npz")):
                target = self.folder / path.relative_to(source)
                if not target.exists() or path.stat().st_mtime_ns > target.stat().st_mtime_ns:
                    self.store.write_bytes(target, path.read_bytes())
                    copied += 1
        return copied

    def logged(self, cell: Mapping[str, Any], cell_hash: str) -> bool:
        """Whether ``cell``'s archive is present, readable and of this very cell (hash)."""
        header = self._header(self.path(cell))
        return header is not None and header["cell_hash"] == cell_hash

    def write_index(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Rewrite index.csv from the run's records (in order): one row per logged cell.  Nothing
        is written in a folder that never logged a cell."""
        rows = []
        for record in records:
            cell = record["cell"]
            if cell.get("kind") != "security" or not self.logged(cell, record["cell_hash"]):
                continue
            header = self._header(self.path(cell))
            assert header is not None
            count, channels, height, width = header["shape"]
            rows.append({"file": self.path(cell).relative_to(self.store.folder).as_posix(), **{k: cell[k] for k in ("dataset", "cipher", "attack")},
                         "threat_model": header["threat_model"], "cell_hash": record["cell_hash"], "images": count,
                         "channels": channels, "height": height, "width": width})
        if not rows and not self.index_path.exists():
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.store.write_bytes(self.index_path, text.getvalue().encode())

    def _header(self, path: Path) -> dict[str, Any] | None:
        """An archive's small arrays (hash, threat model, shape), read once per file version; None
        when it is absent or unreadable (the cell is then not logged, and a logging run redoes it)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._headers.get(path)
        if cached is None or cached[0] != version:
            try:
                with np.load(path, allow_pickle=False) as archive:
                    header = {"cell_hash": str(archive["cell_hash"]), "threat_model": str(archive["threat_model"]),
                              "shape": [int(v) for v in archive["shape"]]}
            except Exception:  # truncated, not an archive, arrays missing
                header = None
            cached = self._headers[path] = (version, header)
        return cached[1]


def load_restorations(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of one archive: ``restored``, ``image_id``, ``score_<metric>`` and the cell's names."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
