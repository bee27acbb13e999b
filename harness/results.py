"""The results store of a run folder: one checksummed record per cell, and the tidy files
compiled from them (``results.csv``, ``per_image.csv``, ``examples/``), plus ``run.json``.

A cell's record ``cells/<cell hash>.json`` holds everything the cell computed (its rows, its
per-image scores, its example images) with a SHA-256 checksum of that content; it is written
atomically (temp file, then ``os.replace``), so a record is either whole or absent, and a record
whose checksum does not match is *damaged* and never counts as finished.  Finished-ness comes
from the records only: ``results.csv`` and ``per_image.csv`` are compiled from them (under a
file lock, after every cell and at the end of a run), so concurrent writers, sharded runs and
killed processes never lose or duplicate a cell.

One row of results.csv is one measurement of one cell; one row of per_image.csv is one
per-image score of one cell (SSIM, PSNR, identification of every restored image, correctness
of every classified one), so distributions, paired comparisons and intervals are computed from
stored results.  Reports are rendered only from these files.  Every file is written atomically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import os
from pathlib import Path
import sys
from typing import Any, Iterable, Iterator, TypedDict

import numpy as np
import pandas as pd

from harness.cache import atomic_write_bytes

RESULTS_FILE = "results.csv"
PER_IMAGE_FILE = "per_image.csv"
RUN_FILE = "run.json"
EXAMPLES_DIR = "examples"
CELLS_DIR = "cells"
#: version of the cell-record file format (``cells/<hash>.json``)
RECORD_FORMAT = 1

#: column -> pandas dtype; cells that do not apply hold "" (strings) or NaN (numbers)
COLUMNS: dict[str, str] = {
    "kind": "string",  # accuracy | security | key_space
    "dataset": "string",
    "cipher": "string",
    "classifier": "string",
    "attack": "string",
    "key_condition": "string",
    "metric": "string",
    "value": "float64",
    "ci95_low": "float64",
    "ci95_high": "float64",
    "n": "Int64",
    "status": "string",  # ok | failed | n/a
    "note": "string",
    "preset": "string",
    "seed": "Int64",
    "elapsed_s": "float64",
    "cell_hash": "string",  # the cell's identity: which configuration and code the row came from
}
#: the per-image table: a cell's coordinates, the image's index in the evaluated split, metric, value
PER_IMAGE_COLUMNS: dict[str, str] = {
    "kind": "string",
    "dataset": "string",
    "cipher": "string",
    "classifier": "string",
    "attack": "string",
    "key_condition": "string",
    "image_id": "int64",
    "metric": "string",
    "value": "float64",
    "cell_hash": "string",
}
#: columns added after a format was first published: older files without them still load (as "")
ADDED_COLUMNS = ("cell_hash",)
KINDS = ("accuracy", "security", "key_space")
STATUSES = ("ok", "failed", "n/a")
CELL_COLUMNS = ("kind", "dataset", "cipher", "classifier", "attack", "key_condition")


class ResultsSchemaError(ValueError):
    """results.csv or run.json does not follow the schema."""


class RunFolderError(ValueError):
    """A folder that cannot be a run folder (a file, someone else's folder, not writable): a user error."""


class ExampleRecord(TypedDict):
    """Example images of a cell (restorations of an attack, or plain and encrypted images)."""

    name: str  # the attack, or "plain" / "encrypted"
    images: dict[str, Any]  # uint8 [N, C, H, W], :func:`encode_array`
    ssim: list[float] | None  # of each image against its plaintext, when they compare


class CellRecord(TypedDict):
    """One cell's record, ``cells/<cell_hash>.json``: everything the cell computed, written by the
    runner (``Runner.write_record``) and wrapped by :func:`encode_record` with ``RECORD_FORMAT``
    and a checksum.  Results, per-image scores and examples are compiled from these only."""

    cell_hash: str  # the cell's identity (harness.run.identity.cell_hash)
    cell: dict[str, str]  # its coordinates: kind, dataset, cipher, classifier, attack, key_condition
    inputs: dict[str, Any]  # the configuration parts it read (harness.run.identity.cell_inputs)
    code: dict[str, str]  # its code version: scramblebench version and source digest
    status: str  # ok | failed | n/a (failed when any row failed)
    rows: list[dict[str, Any]]  # rows of results.csv (COLUMNS), with elapsed_s and cell_hash
    per_image: dict[str, list[float]]  # metric -> value of each evaluated image, by image id
    examples: list[ExampleRecord]
    finished: str  # UTC ISO time the record was written (the newest record of a cell wins)
    elapsed_s: float  # seconds the cell took (NaN when its worker died)
    device: str
    git_commit: str  # recorded, not part of the identity
    host: str


class DamagedRecordError(ValueError):
    """A cell record cannot be read or its checksum does not match its content."""


def _with_added_columns(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """An older file's frame with the columns added since (empty), in schema order."""
    missing = [c for c in ADDED_COLUMNS if c in columns and c not in frame.columns]
    if missing and list(frame.columns) == [c for c in columns if c not in missing]:
        for column in missing:
            frame[column] = ""
        frame = frame[list(columns)]
    return frame


def cell_id(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(c) or "") for c in CELL_COLUMNS)


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def rows_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for column, dtype in COLUMNS.items():
        if dtype == "string":
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), "").astype(str).astype("string")
        else:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(dtype)
    return frame


def validate_results(frame: pd.DataFrame) -> None:
    """Raise ResultsSchemaError unless ``frame`` follows :data:`COLUMNS` and the value rules."""
    if list(frame.columns) != list(COLUMNS):
        raise ResultsSchemaError(f"results columns must be {list(COLUMNS)}, got {list(frame.columns)}")
    bad_kind = set(frame["kind"]) - set(KINDS)
    bad_status = set(frame["status"]) - set(STATUSES)
    if bad_kind or bad_status:
        raise ResultsSchemaError(f"unknown kind(s) {sorted(bad_kind)} or status(es) {sorted(bad_status)}")
    ok = frame["status"] == "ok"
    if frame.loc[ok, "value"].isna().any():
        raise ResultsSchemaError("rows with status 'ok' must have a value")
    if (frame.loc[ok, "metric"] == "").any() or (frame["cipher"] == "").any():
        raise ResultsSchemaError("every row needs a cipher and every ok row a metric")
    accuracy = frame[(frame["kind"] == "accuracy") & ok & (frame["metric"] == "accuracy")]
    if not accuracy["value"].between(0, 1).all():
        raise ResultsSchemaError("accuracy values must lie in [0, 1]")
    for kind, column in (("accuracy", "classifier"), ("security", "attack")):
        if (frame.loc[frame["kind"] == kind, column] == "").any():
            raise ResultsSchemaError(f"{kind} rows need a {column}")


class ResultStore:
    """Reads and atomically rewrites a run folder's results and metadata."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.results_path = self.folder / RESULTS_FILE
        self.per_image_path = self.folder / PER_IMAGE_FILE
        self.run_path = self.folder / RUN_FILE
        self.examples_dir = self.folder / EXAMPLES_DIR
        self._records: dict[str, tuple[tuple, dict[str, Any]]] = {}  # verified records by file name

    def load(self) -> pd.DataFrame:
        if not self.results_path.exists():
            return empty_frame()
        try:
            frame = _with_added_columns(pd.read_csv(self.results_path, dtype=str, keep_default_na=False), COLUMNS)
            frame = rows_frame(frame.replace({"": None}).to_dict("records"))
            validate_results(frame)
        except Exception as exc:
            raise ResultsSchemaError(
                f"{self.results_path} cannot be read ({type(exc).__name__}: {exc}); "
                "move it away or start a fresh run with --no-resume"
            ) from exc
        return frame

    def save(self, frame: pd.DataFrame) -> None:
        validate_results(frame)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, float_format="%.10g")
        atomic_write_bytes(self.results_path, buffer.getvalue().encode())

    # -- per-image scores -----------------------------------------------------------------
    def load_per_image(self) -> pd.DataFrame:
        """The per-image table (empty when the run has none yet)."""
        if not self.per_image_path.exists():
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PER_IMAGE_COLUMNS.items()})
        try:
            frame = pd.read_csv(self.per_image_path, dtype={c: str for c, t in PER_IMAGE_COLUMNS.items() if t == "string"}, keep_default_na=False)
            frame = _with_added_columns(frame, PER_IMAGE_COLUMNS)
            if list(frame.columns) != list(PER_IMAGE_COLUMNS):
                raise ValueError(f"columns must be {list(PER_IMAGE_COLUMNS)}, got {list(frame.columns)}")
            return frame.astype(PER_IMAGE_COLUMNS)
        except Exception as exc:
            raise ResultsSchemaError(
                f"{self.per_image_path} cannot be read ({type(exc).__name__}: {exc}); "
                "move it away or start a fresh run with --no-resume"
            ) from exc

    def write_run(self, run: dict[str, Any], merge_key_spaces: bool = False) -> None:
        """Write run.json; with ``merge_key_spaces`` (under the folder's lock) the key spaces of
        another run of the same configuration already there are kept, so shards add up."""
        if not merge_key_spaces:
            atomic_write_bytes(self.run_path, dumps_strict(run).encode())
            return
        with self.lock():
            try:
                existing = self.read_run()
            except (FileNotFoundError, ValueError):
                existing = {}
            if _as_json(existing.get("config")) == _as_json(run["config"]):
                run["key_spaces"] = {**existing.get("key_spaces", {}), **run["key_spaces"]}
            atomic_write_bytes(self.run_path, dumps_strict(run).encode())

    def read_run(self) -> dict[str, Any]:
        if not self.run_path.exists():
            raise FileNotFoundError(f"{self.run_path} not found: not a scramblebench run folder")
        return json.loads(self.run_path.read_text())

    # -- example images for the figures ------------------------------------------------
    def example_path(self, dataset: str, cipher: str, attack: str) -> Path:
        return self.examples_dir / dataset / f"{cipher}__{attack}.npz"

    def save_examples(self, path: Path, images: np.ndarray, ssim: np.ndarray | None = None, cell_hash: str = "") -> None:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, images=images, ssim=np.asarray([] if ssim is None else ssim, dtype=np.float64), cell_hash=np.asarray(cell_hash)
        )
        atomic_write_bytes(path, buffer.getvalue())

    @staticmethod
    def examples_cell_hash(path: Path) -> str | None:
        """The cell hash an example file was compiled from (None: absent, unreadable or older)."""
        try:
            with np.load(path) as archive:
                return str(archive["cell_hash"]) if "cell_hash" in archive.files else None
        except Exception:
            return None

    @staticmethod
    def load_examples(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with np.load(path) as archive:
            return archive["images"], archive["ssim"]

    # -- cell records -------------------------------------------------------------------
    @property
    def cells_dir(self) -> Path:
        return self.folder / CELLS_DIR

    def record_path(self, cell_hash: str) -> Path:
        return self.cells_dir / f"{cell_hash}.json"

    def write_record(self, record: dict[str, Any]) -> Path:
        """Write one cell's record atomically, with a checksum of its content; returns its path."""
        path = self.record_path(record["cell_hash"])
        atomic_write_bytes(path, encode_record(record))
        return path

    def read_record(self, path: Path) -> dict[str, Any]:
        """A verified record (DamagedRecordError when unreadable or its checksum does not match)."""
        path = Path(path)
        stat = path.stat()
        key = (path.name, stat.st_mtime_ns, stat.st_size)
        cached = self._records.get(path.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        record = decode_record(path.read_bytes(), path)
        if f"{record.get('cell_hash')}.json" != path.name:
            raise DamagedRecordError(f"cell record {path} holds cell {record.get('cell_hash')!r}, not the one its name says")
        self._records[path.name] = (key, record)
        return record

    def scan_records(self) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
        """Every verified record in ``cells/`` and the damaged ones (path, reason)."""
        good, damaged = [], []
        if not self.cells_dir.is_dir():
            return good, damaged
        for path in sorted(self.cells_dir.glob("*.json")):
            try:
                good.append(self.read_record(path))
            except FileNotFoundError:  # replaced or removed by another process meanwhile
                continue
            except DamagedRecordError as exc:
                damaged.append((path, str(exc)))
        return good, damaged

    def touch_record(self, cell_hash: str) -> None:
        """Mark a reused record as the newest of its cell's coordinates (compile picks the newest)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.record_path(cell_hash))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the run folder's records (``cells/.lock``), held while compiling."""
        import fcntl

        self.cells_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cells_dir / ".lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_compiled(self, records: list[dict[str, Any]]) -> None:
        """Rewrite results.csv, per_image.csv and the example files from ``records`` (in order)."""
        rows = [{**row, "cell_hash": record["cell_hash"]} for record in records for row in record["rows"]]
        self.save(rows_frame(rows) if rows else empty_frame())
        parts = []
        for record in records:
            cell = record["cell"]
            for metric, values in (record.get("per_image") or {}).items():
                values = np.asarray(values, dtype=np.float64)
                part = pd.DataFrame({c: [str(cell.get(c) or "")] * values.size for c in CELL_COLUMNS})
                part["image_id"], part["metric"], part["value"] = np.arange(values.size), metric, values
                part["cell_hash"] = record["cell_hash"]
                parts.append(part)
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PER_IMAGE_COLUMNS))
        table = table[list(PER_IMAGE_COLUMNS)].astype(PER_IMAGE_COLUMNS)
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, float_format="%.10g")
        atomic_write_bytes(self.per_image_path, buffer.getvalue().encode())
        for record in records:
            cell = record["cell"]
            for example in record.get("examples") or []:
                path = self.example_path(cell["dataset"], cell["cipher"], example["name"])
                if self.examples_cell_hash(path) != record["cell_hash"]:
                    self.save_examples(path, decode_array(example["images"]), None if example["ssim"] is None else np.asarray(example["ssim"]), record["cell_hash"])

    # -- errors.log -------------------------------------------------------------------------
    def log_error(self, title: str, text: str) -> None:
        """Append an entry to errors.log (a failed cell's traceback, a warning)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "errors.log").open("a") as log:
            log.write(f"== {title}\n{text}\n")

    def warn(self, message: str) -> None:
        """A warning line on stderr and in errors.log."""
        print(f"scramblebench: warning: {message}", file=sys.stderr, flush=True)
        self.log_error("warning", message)

    # -- the run folder's life: prepare, merge ---------------------------------------------
    def prepare(self, resume: bool) -> ResultStore:
        """Create or adopt this folder as a run folder (owner-only, with the runner's marker); with
        ``resume=False`` clear the runner's own files there.  User errors are :class:`RunFolderError`.

        A folder without the marker is adopted only when it is empty or an older run folder
        (results.csv or run.json, resume only); any other non-empty folder is refused, so the
        runner never writes into, or clears, a folder it did not make.
        """
        out = self.folder
        if out.exists() and not out.is_dir():
            raise RunFolderError(f"--out {out} is a file, not a folder; name a new or existing run folder")
        if out.is_dir():
            self._check_adoptable(resume)
        else:
            try:
                out.mkdir(parents=True, mode=0o700, exist_ok=True)  # another process of a sharded run may have just made it
                out.chmod(0o700)  # owner-only whatever the umask: examples are known plaintexts
            except OSError as exc:
                raise RunFolderError(f"--out {out}: cannot create the run folder ({exc.strerror or exc})") from None
        try:
            self.write_marker()
        except OSError as exc:
            raise RunFolderError(f"--out {out} is not writable ({exc.strerror or exc})") from None
        if not resume:
            self.clear_run_files()
        return self

    def _check_adoptable(self, resume: bool) -> None:
        out = self.folder
        if self.has_marker() or not any(out.iterdir()):
            return
        if not resume:
            raise RunFolderError(
                f"--no-resume refuses to clear {out}: it is not empty and has no {MARKER_FILE} marker, "
                "so scramblebench did not make it; choose a new folder, or empty it yourself"
            )
        if not (self.results_path.exists() or self.run_path.exists()):
            raise RunFolderError(
                f"--out {out} is a non-empty folder that is not a scramblebench run folder "
                f"(no {MARKER_FILE} marker, no results); choose a new or empty folder"
            )

    def merge_from(self, shards: list[Path]) -> int:
        """Copy every verified record of the ``shards`` run folders into this one (a damaged one is
        skipped with a warning; of two records of one name the newer file wins) and add their key
        spaces to run.json when they ran the same configuration; returns how many were copied."""
        import shutil

        run, copied = self.read_run(), 0
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        for shard in shards:
            source = ResultStore(shard)
            for path in sorted(source.cells_dir.glob("*.json")) if source.cells_dir.is_dir() else []:
                try:
                    source.read_record(path)
                except DamagedRecordError as exc:
                    self.warn(f"{exc}; not merged")
                    continue
                target = self.cells_dir / path.name
                if not target.exists() or path.stat().st_mtime_ns > target.stat().st_mtime_ns:
                    tmp = target.with_name(f".{path.name}.merge.tmp")
                    shutil.copy2(path, tmp)  # keeps the file time: the newest record of a cell wins
                    tmp.replace(target)
                    copied += 1
            other = source.read_run()
            if other.get("config") == run["config"]:
                run["key_spaces"] = {**other.get("key_spaces", {}), **run.get("key_spaces", {})}
        self.write_run(run)
        return copied

    # -- the run-folder marker ------------------------------------------------------------
    @property
    def marker_path(self) -> Path:
        return self.folder / MARKER_FILE

    def has_marker(self) -> bool:
        return self.marker_path.is_file()

    def write_marker(self) -> None:
        """Mark the folder as the runner's (raises OSError where it cannot be written)."""
        self.marker_path.write_text(
            "This folder is a scramblebench run folder. `--no-resume` clears only the runner's own files here: "
            + ", ".join(RUN_OUTPUTS) + ".\n"
        )

    def clear_run_files(self) -> list[Path]:
        """Delete :data:`RUN_OUTPUTS` (nothing else) from a marked folder; returns what was removed."""
        import shutil

        if not self.has_marker():
            raise ResultsSchemaError(f"{self.folder} has no {MARKER_FILE} marker: scramblebench did not make it; nothing cleared")
        removed = []
        for name in RUN_OUTPUTS:
            path = self.folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(path)
        return removed


def exact_int_string(value: int) -> str:
    """Decimal digits of an arbitrarily large int (key spaces such as ELE's 2^32186 exceed
    Python's default int-to-str digit limit, which we do not lift globally)."""
    chunk = 10**1000
    if value < chunk:
        return str(value)
    parts = []
    while value:
        value, low = divmod(value, chunk)
        parts.append(low)
    return str(parts[-1]) + "".join(f"{part:01000d}" for part in reversed(parts[:-1]))


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode()}


def decode_array(encoded: dict[str, Any]) -> np.ndarray:
    data = base64.b64decode(encoded["data"], validate=True)
    return np.frombuffer(data, dtype=np.dtype(encoded["dtype"])).reshape(encoded["shape"]).copy()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_plain)


def encode_record(record: dict[str, Any]) -> bytes:
    """A record file: ``{"format", "checksum": "sha256:<hex of the canonical record>", "record"}``.

    The record is canonicalised first (plain JSON types, NaN as ``NaN``), so the checksum is
    recomputed exactly from what a reader parses.
    """
    payload = json.loads(_canonical(record))
    text = _canonical(payload)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return (f'{{"format":{RECORD_FORMAT},"checksum":"sha256:{digest}","record":' + text + "}\n").encode()


def decode_record(data: bytes, path: Path | str = "<record>") -> dict[str, Any]:
    try:
        document = json.loads(data)
        record, checksum = document["record"], document["checksum"]
        if document.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {RECORD_FORMAT}")
    except Exception as exc:
        raise DamagedRecordError(f"cell record {path} cannot be read ({type(exc).__name__}: {exc})") from None
    actual = "sha256:" + hashlib.sha256(_canonical(record).encode()).hexdigest()
    if actual != checksum:
        raise DamagedRecordError(f"cell record {path} is damaged: its checksum {checksum} does not match its content ({actual})")
    return record


def _as_json(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), to compare a configuration with a stored one."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, np.generic):
        return _strict(value.item())
    return value


def dumps_strict(value: Any) -> str:
    """Strict JSON: NaN/inf as null, sorted keys, indented."""
    return json.dumps(_strict(value), sort_keys=True, indent=2, allow_nan=False) + "\n"


#: written by the runner into every run folder it creates or uses; ``--no-resume`` clears only
#: folders that hold it, and only :data:`RUN_OUTPUTS` there
MARKER_FILE = ".scramblebench-run"
#: the runner's own files in a run folder (``cache/`` of trained models is kept: ``--refresh-cache``)
RUN_OUTPUTS = (RESULTS_FILE, PER_IMAGE_FILE, RUN_FILE, "report.md", "tables.tex", "tables.html", "errors.log", EXAMPLES_DIR, "figures", CELLS_DIR)
