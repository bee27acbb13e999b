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

Everything the store writes is private: folders 0700 and files 0600, the run folder itself
included whether or not it existed (example images are known plaintext/ciphertext pairs, which
determine keys); :meth:`ResultStore.make_private` does the same for files others wrote into the
folder (the report's figures).  Whatever is wrong with a run folder (an unreadable or malformed
run.json, results.csv or example file, an unwritable folder) raises :class:`RunFolderError`,
whose one-line message names the file and the fix; a results.csv or per_image.csv that holds
fewer rows than the records in ``cells/`` compile to is recompiled from the records.
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
from typing import IO, Any, Iterable, Iterator, TypedDict

import numpy as np
import pandas as pd

from harness.cache import atomic_write_bytes

RESULTS_FILE = "results.csv"
PER_IMAGE_FILE = "per_image.csv"
RUN_FILE = "run.json"
EXAMPLES_DIR = "examples"
#: every restored image of every security cell, with ``--log-restorations`` (:mod:`harness.restorations`)
RESTORATIONS_DIR = "restorations"
CELLS_DIR = "cells"
#: in ``cells/``: which records results.csv and per_image.csv were last compiled from, in order,
#: with their row counts, written before them, so a cut or missing compiled file is detected
COMPILED_INDEX = ".compiled-index"
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


class RunFolderError(ValueError):
    """A run folder, or a file in it, cannot be read or written as scramblebench needs.

    The one type every problem with a run folder raises (the classes below derive from it); its
    message is one line naming the file and the fix, for the CLI to print and exit 2.
    """


class ResultsSchemaError(RunFolderError):
    """results.csv or run.json does not follow the schema."""


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


class DamagedRecordError(RunFolderError):
    """A cell record cannot be read or its checksum does not match its content."""


class ConfigurationMismatch(RunFolderError):
    """A run or merge would add cells of another configuration to a run folder (one configuration per folder)."""


#: run.json must be an object holding these keys, of these JSON types
RUN_REQUIRED = {"config": (dict,)}
#: run.json's ``config`` must hold these keys, of these JSON types (what reports read)
RUN_CONFIG_REQUIRED = {"datasets": (list,), "ciphers": (list, dict)}
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def _drop_group_and_other(path: Path) -> None:
    """Owner-only ``path``: a folder keeps its owner bits (0700 for a normal one), a file its owner's read/write (0600)."""
    mode = path.stat().st_mode
    keep = PRIVATE_DIR if os.path.isdir(path) else PRIVATE_FILE
    if mode & 0o7777 != mode & keep:
        path.chmod(mode & keep)


def _os_problem(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))


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
        self._private = False  # whether this store has made the run folder private yet
        self._private_folders: set[Path] = set()  # folders inside it made private (or found so)
        #: what reading found and fixed (a recompiled results.csv ...): for a report to mention
        self.notes: list[str] = []

    # -- private, checked writes ----------------------------------------------------------------
    def _ensure_folder(self, folder: Path | None = None) -> None:
        """Create ``folder`` (default: the run folder) and its parents inside the run folder, all 0700."""
        try:
            if not self._private:
                self.folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
                _drop_group_and_other(self.folder)  # an existing folder too: owner only, whatever the umask
                self._private = True
            if folder is not None and folder != self.folder:
                try:
                    current, parts = self.folder, folder.relative_to(self.folder).parts
                except ValueError:  # spelled differently (absolute and relative): made from its root
                    current, parts = Path(folder.anchor or "."), folder.parts[1 if folder.anchor else 0 :]
                for part in parts:
                    current = current / part
                    if current in self._private_folders:
                        continue
                    if not current.is_dir():
                        current.mkdir(mode=PRIVATE_DIR, exist_ok=True)
                    _drop_group_and_other(current)
                    self._private_folders.add(current)
        except OSError as exc:
            raise RunFolderError(
                f"run folder {self.folder} cannot be written ({_os_problem(exc)}): make it writable "
                "(chmod u+w) or choose another --out"
            ) from None

    def write_bytes(self, path: str | Path, data: bytes) -> Path:
        """Write ``data`` atomically to ``path`` (inside the run folder, or relative to it), mode 0600.

        For every file of the run folder, the report's included; an unwritable folder raises
        :class:`RunFolderError` naming it.
        """
        path = Path(path)
        if not path.is_absolute() and not path.is_relative_to(self.folder):
            path = self.folder / path
        self._ensure_folder(path.parent)
        try:
            atomic_write_bytes(path, data)  # a mkstemp file: 0600 from the start
            path.chmod(PRIVATE_FILE)
        except OSError as exc:
            raise RunFolderError(
                f"cannot write {path} ({_os_problem(exc)}): make the run folder {self.folder} writable "
                "(chmod u+w) or choose another --out"
            ) from None
        return path

    def check_writable(self) -> None:
        """Raise :class:`RunFolderError` unless a file can be created in the run folder (call before long work)."""
        import tempfile

        self._ensure_folder()
        try:
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".writable.", delete=True):
                pass
        except OSError as exc:
            raise RunFolderError(
                f"run folder {self.folder} is not writable ({_os_problem(exc)}): make it writable "
                "(chmod u+w) or copy it and render the copy"
            ) from None

    def make_private(self) -> None:
        """chmod the run folder's tree: folders 0700, files 0600 (symlinks are left alone).

        Permissions are only taken away, never given: group and other lose everything, files lose
        execute; a folder the owner made read-only stays read-only.

        The store's own writes are private already; call this after others write into the folder
        (the report's figures through matplotlib, the model cache).
        """
        try:
            _drop_group_and_other(self.folder)
            for root, dirs, files in os.walk(self.folder):
                for name in [*dirs, *files]:
                    path = Path(root) / name
                    if not path.is_symlink():
                        _drop_group_and_other(path)
        except OSError as exc:
            raise RunFolderError(f"cannot make {self.folder} private ({_os_problem(exc)}): chmod -R go-rwx it yourself") from None

    def load(self) -> pd.DataFrame:
        """results.csv, checked against the records it was compiled from (recompiled where they disagree)."""
        return self._checked(self._read_results, 1, RESULTS_FILE)

    def _checked(self, read, column: int, name: str) -> pd.DataFrame:
        """A compiled file read by ``read``, recompiled when it disagrees with the compiled index."""
        index = self.compiled_index()
        try:
            frame = read()
        except ResultsSchemaError:
            if index is None:
                raise
            frame = None  # damaged (a line cut mid-row): recompiled where the records allow
        if index is not None and (frame is None or not _counts_agree(frame, index, column)):
            return self._recompile(index, name)[column - 1]
        return frame

    def _read_results(self) -> pd.DataFrame:
        if not self.results_path.exists():
            return empty_frame()
        try:
            frame = _with_added_columns(pd.read_csv(self.results_path, dtype=str, keep_default_na=False), COLUMNS)
            frame = rows_frame(frame.replace({"": None}).to_dict("records"))
            validate_results(frame)
        except Exception as exc:
            raise ResultsSchemaError(
                f"{self.results_path} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                "move it away or start a fresh run with --no-resume"
            ) from None
        return frame

    # -- compiled files checked against the records -----------------------------------------
    @property
    def compiled_index_path(self) -> Path:
        return self.cells_dir / COMPILED_INDEX

    def compiled_index(self) -> list[tuple[str, int, int]] | None:
        """(cell hash, rows, per-image rows) of every record the compiled files were made from, in order
        (None: no index, an older run folder or one never compiled)."""
        try:
            document = json.loads(self.compiled_index_path.read_text())
            return [(str(h), int(r), int(p)) for h, r, p in document["cells"]]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RunFolderError(f"{self.compiled_index_path} cannot be read ({_os_problem(exc)}): make the run folder readable") from None
        except Exception:
            return None  # damaged: treated as absent; the next compile rewrites it

    def _agrees(self, read, index: list[tuple[str, int, int]], column: int) -> bool:
        """Whether the compiled file ``read`` reads holds exactly the rows per cell that ``index`` lists."""
        try:
            return _counts_agree(read(), index, column)
        except ResultsSchemaError:
            return False

    def _recompile(self, index: list[tuple[str, int, int]], name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild the compiled files from the records ``index`` lists, under the folder's lock (a compile
        in progress finishes first), written back where the folder allows, else in memory only."""
        try:
            lock = self.lock()
            lock.__enter__()
        except RunFolderError:
            lock = None  # a read-only folder: compiled in memory only
        try:
            if lock is not None:
                index = self.compiled_index() or index
                if self._agrees(self._read_results, index, 1) and self._agrees(self._read_per_image, index, 2):
                    return self._read_results(), self._read_per_image()
            records = []
            for cell_hash, *_ in index:
                path = self.record_path(cell_hash)
                try:
                    records.append(self.read_record(path))
                except (OSError, DamagedRecordError) as exc:
                    raise RunFolderError(
                        f"{self.folder / name} disagrees with the records in {self.cells_dir}, and record {path.name} "
                        f"it was compiled from cannot be read ({' '.join(str(exc).split())}); rerun the run (resume recomputes that cell)"
                    ) from None
            frame, table = compile_frames(records)
            note = (f"{name} disagreed with the {len(records)} record(s) in {CELLS_DIR}/ it was compiled from; "
                    f"recompiled from them ({len(frame)} result rows, {len(table)} per-image rows)")
            try:
                if lock is None:
                    raise RunFolderError("not writable")
                self.write_compiled(records)
            except RunFolderError:
                note += " in memory only: the folder is not writable"
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)
        self.notes.append(note)
        self.warn(note)
        return frame, table

    def save(self, frame: pd.DataFrame) -> None:
        validate_results(frame)
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False, float_format="%.10g")
        self.write_bytes(self.results_path, buffer.getvalue().encode())

    # -- per-image scores -----------------------------------------------------------------
    def load_per_image(self) -> pd.DataFrame:
        """The per-image table (empty when the run has none yet), checked against the records like :meth:`load`."""
        return self._checked(self._read_per_image, 2, PER_IMAGE_FILE)

    def _read_per_image(self) -> pd.DataFrame:
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
                f"{self.per_image_path} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                "move it away or start a fresh run with --no-resume"
            ) from None

    def write_run(self, run: dict[str, Any], merge_key_spaces: bool = False) -> None:
        """Write run.json; with ``merge_key_spaces`` (under the folder's lock) the key spaces of
        another run of the same configuration already there are kept, so shards add up."""
        if not merge_key_spaces:
            self.write_bytes(self.run_path, dumps_strict(run).encode())
            return
        with self.lock():
            self._write_run_merged(run)

    def _write_run_merged(self, run: dict[str, Any]) -> None:
        """run.json with the key spaces of the one already there when it holds the same configuration (under the lock)."""
        existing = self._stored_run()
        if existing is not None and configuration_difference(existing["config"], run["config"]) is None:
            run["key_spaces"] = {**existing.get("key_spaces", {}), **run.get("key_spaces", {})}
        self.write_bytes(self.run_path, dumps_strict(run).encode())

    def _stored_run(self) -> dict[str, Any] | None:
        """run.json (None: absent, or not a run's)."""
        try:
            return self.read_run()
        except (FileNotFoundError, ValueError):
            return None

    def read_run(self) -> dict[str, Any]:
        """run.json, checked: an object with ``config`` (an object with ``datasets`` and ``ciphers`` lists).

        FileNotFoundError when absent (not a run folder); :class:`RunFolderError` when unreadable,
        not JSON or not of that shape.
        """
        if not self.run_path.exists():
            raise FileNotFoundError(f"{self.run_path} not found: not a scramblebench run folder")
        fix = "restore it from a copy, or rerun the run into this folder (resume rewrites run.json)"
        try:
            run = json.loads(self.run_path.read_bytes())
        except OSError as exc:
            raise RunFolderError(f"{self.run_path} cannot be read ({_os_problem(exc)}): make it readable (chmod u+r)") from None
        except ValueError as exc:
            raise RunFolderError(f"{self.run_path} is not valid JSON ({exc}): {fix}") from None
        if not isinstance(run, dict):
            raise RunFolderError(f"{self.run_path} holds a JSON {_json_kind(run)}, not an object: {fix}")
        for where, holder, required in (("", run, RUN_REQUIRED), ("config ", run.get("config"), RUN_CONFIG_REQUIRED)):
            for key, kinds in required.items():
                if not isinstance(holder.get(key), kinds):
                    got = "it is missing" if key not in holder else f"got a JSON {_json_kind(holder[key])}"
                    wanted = " or ".join(_json_kind(kind()) for kind in kinds)
                    raise RunFolderError(f"{self.run_path}: {where}{key!r} must be a JSON {wanted}, {got}: {fix}")
        return run

    # -- example images for the figures ------------------------------------------------
    def example_path(self, dataset: str, cipher: str, attack: str) -> Path:
        return self.examples_dir / dataset / f"{cipher}__{attack}.npz"

    def save_examples(self, path: Path, images: np.ndarray, ssim: np.ndarray | None = None, cell_hash: str = "") -> None:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, images=images, ssim=np.asarray([] if ssim is None else ssim, dtype=np.float64), cell_hash=np.asarray(cell_hash)
        )
        self.write_bytes(path, buffer.getvalue())

    @staticmethod
    def examples_cell_hash(path: Path) -> str | None:
        """The cell hash an example file was compiled from (None: absent, unreadable or older)."""
        try:
            with np.load(path) as archive:
                return str(archive["cell_hash"]) if "cell_hash" in archive.files else None
        except Exception:
            return None

    def load_examples(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """An example file's images and SSIM scores.

        A damaged file (truncated, not an archive, arrays missing) is rebuilt from the cell record
        that holds it (written back where the folder allows); where no record holds it,
        :class:`RunFolderError` names the file and the fix.
        """
        path = Path(path)
        try:
            return _read_examples(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RunFolderError(f"example file {path} cannot be read ({_os_problem(exc)}): make it readable (chmod u+r)") from None
        except Exception as exc:
            problem = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        rebuilt = self._example_from_records(path)
        if rebuilt is None:
            raise RunFolderError(
                f"example file {path} is damaged ({problem}) and no record in {self.cells_dir} holds it: "
                "delete it and rerun the run (resume rewrites the examples)"
            )
        images, ssim, cell_hash = rebuilt
        note = f"example file {path} was damaged ({problem}); rebuilt from cell record {cell_hash}"
        try:
            self.save_examples(path, images, ssim, cell_hash)
        except RunFolderError:
            note += " in memory only: the folder is not writable"
        self.notes.append(note)
        self.warn(note)
        return images, np.asarray([] if ssim is None else ssim, dtype=np.float64)

    def _example_from_records(self, path: Path) -> tuple[np.ndarray, np.ndarray | None, str] | None:
        """The newest record's copy of example file ``path`` (images, ssim, cell hash), or None."""
        records, _ = self.scan_records()
        found = None
        for record in records:
            cell = record.get("cell") or {}
            for example in record.get("examples") or []:
                try:
                    if self.example_path(cell["dataset"], cell["cipher"], example["name"]) == path:
                        key = (str(record.get("finished", "")), record["cell_hash"])
                        if found is None or key > found[0]:
                            found = (key, record, example)
                except (KeyError, TypeError):
                    continue
        if found is None:
            return None
        _, record, example = found
        ssim = None if example.get("ssim") is None else np.asarray(example["ssim"], dtype=np.float64)
        return decode_array(example["images"]), ssim, record["cell_hash"]

    # -- cell records -------------------------------------------------------------------
    @property
    def cells_dir(self) -> Path:
        return self.folder / CELLS_DIR

    def record_path(self, cell_hash: str) -> Path:
        return self.cells_dir / f"{cell_hash}.json"

    def write_record(self, record: dict[str, Any]) -> Path:
        """Write one cell's record atomically, with a checksum of its content; returns its path."""
        return self.write_bytes(self.record_path(record["cell_hash"]), encode_record(record))

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
        """An exclusive lock on the run folder (:data:`LOCK_FILE`, which no clear removes, so every
        process waits on the same file), held while compiling, clearing, merging and writing run.json."""
        import fcntl

        self._ensure_folder()
        path = self.folder / LOCK_FILE
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        except OSError as exc:
            raise RunFolderError(
                f"cannot lock {path} ({_os_problem(exc)}): make the run folder {self.folder} writable (chmod u+w)"
            ) from None
        with os.fdopen(descriptor, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_compiled(self, records: list[dict[str, Any]]) -> None:
        """Rewrite results.csv, per_image.csv and the example files from ``records`` (in order).

        The index of what they are compiled from (:data:`COMPILED_INDEX`) is written first, so a
        compiled file that is cut, lost or older than the index is recompiled when read.
        """
        frame, table = compile_frames(records)
        rows = frame["cell_hash"].astype(str).value_counts().to_dict() if len(frame) else {}
        per_image = table["cell_hash"].astype(str).value_counts().to_dict() if len(table) else {}
        index = [[r["cell_hash"], int(rows.get(r["cell_hash"], 0)), int(per_image.get(r["cell_hash"], 0))] for r in records]
        self.write_bytes(self.compiled_index_path, json.dumps({"format": 1, "cells": index}).encode())
        self.save(frame)
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, float_format="%.10g")
        self.write_bytes(self.per_image_path, buffer.getvalue().encode())
        for record in records:
            cell = record["cell"]
            for example in record.get("examples") or []:
                path = self.example_path(cell["dataset"], cell["cipher"], example["name"])
                if self.examples_cell_hash(path) != record["cell_hash"]:
                    self.save_examples(path, decode_array(example["images"]), None if example["ssim"] is None else np.asarray(example["ssim"]), record["cell_hash"])

    # -- errors.log -------------------------------------------------------------------------
    def log_error(self, title: str, text: str) -> None:
        """Append an entry to errors.log (a failed cell's traceback, a warning), owner-only like every file."""
        self._ensure_folder()
        descriptor = os.open(self.folder / "errors.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        with os.fdopen(descriptor, "a") as log:
            log.write(f"== {title}\n{text}\n")

    def warn(self, message: str) -> None:
        """A warning: one line on stderr (:func:`warning_line`), and in errors.log where the folder is writable."""
        warning_line(message)
        with contextlib.suppress(OSError, RunFolderError):
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
            self.check_adoptable(resume)
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
            with self.lock(), self._no_other_run():  # never under a run that is writing records
                self.clear_run_files()
        return self

    def _marker_handle(self) -> IO[str]:
        """The run folder's marker (which no clear removes and which is rewritten in place), opened
        for flock: the folder's activity lock (shared by every run and merge, exclusive for a clear)."""
        return os.fdopen(os.open(self.folder / MARKER_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "a")

    @contextlib.contextmanager
    def active(self, run: dict[str, Any] | None = None, *, adding: bool = False) -> Iterator[None]:
        """Held (shared) by every run and merge while it works in the folder: a ``--no-resume``
        clear from another process is refused while it is held.

        With ``run`` (its run.json), one configuration per folder: under the folder's lock, its
        ``config`` is compared with the one in run.json and :class:`ConfigurationMismatch` raised
        where they differ and another run works in the folder, or where ``adding`` (a shard, a
        merge: cells added to the folder's configuration); else ``run`` is written to run.json.
        Alone, a run of another configuration replaces run.json (the folder's records of the
        earlier configuration stay, left out of the compiled files).
        """
        import fcntl

        with self.lock():
            handle = self._marker_handle()
            try:
                if run is not None:
                    try:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        alone = True
                    except BlockingIOError:
                        alone = False
                    existing = self._stored_run()
                    difference = None if existing is None else configuration_difference(existing["config"], run["config"])
                    if difference is not None and (adding or not alone):
                        raise ConfigurationMismatch(
                            f"{self.folder} holds another configuration ({difference}): "
                            + ("shards and merged folders must share one configuration (the same preset, config file and flags); "
                               "use the same flags or another folder" if adding else
                               "another scramblebench run of that configuration is working there; wait for it or choose another --out")
                        )
                    self._write_run_merged(run)
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)  # no clear can hold it: a clear holds the lock we hold
            except BaseException:
                handle.close()
                raise
        try:
            yield
        finally:
            handle.close()

    @contextlib.contextmanager
    def _no_other_run(self) -> Iterator[None]:
        import fcntl

        handle = self._marker_handle()
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunFolderError(
                f"another scramblebench run is working in {self.folder}: --no-resume would delete its records; "
                "wait for it to finish or choose another --out"
            ) from None
        try:
            yield
        finally:
            handle.close()

    def check_adoptable(self, resume: bool) -> None:
        """Raise :class:`RunFolderError` unless ``run`` (with ``resume``) would write into this existing folder (reads only)."""
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
        """Copy every verified record of the ``shards`` run folders into this one, under the folder's
        lock (a damaged one is skipped with a warning; of two records of one name the newer file
        wins), and add their key spaces to run.json; returns how many were copied.  The caller
        checks that they ran this folder's configuration (:func:`configuration_difference`)."""
        import shutil

        with self.lock():
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
                run["key_spaces"] = {**source.read_run().get("key_spaces", {}), **run.get("key_spaces", {})}
            self.write_run(run)
        return copied

    # -- the run-folder marker ------------------------------------------------------------
    @property
    def marker_path(self) -> Path:
        return self.folder / MARKER_FILE

    def has_marker(self) -> bool:
        return self.marker_path.is_file()

    def write_marker(self) -> None:
        """Mark the folder as the runner's and make it private (RunFolderError where it cannot be written).

        Written in place, not through a temp file: the marker's name appears at once, so another
        process adopting the same new folder never sees a folder holding only a stray temp file.
        """
        self._ensure_folder()
        text = ("This folder is a scramblebench run folder. `--no-resume` clears only the runner's own files here: "
                + ", ".join(RUN_OUTPUTS) + ".\n").encode()
        try:
            descriptor = os.open(self.marker_path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(text)  # the same bytes every time: a concurrent writer writes what is there
                handle.truncate()
            _drop_group_and_other(self.marker_path)
        except OSError as exc:
            raise RunFolderError(
                f"cannot write {self.marker_path} ({_os_problem(exc)}): make the run folder {self.folder} writable "
                "(chmod u+w) or choose another --out"
            ) from None

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


def compile_frames(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The results frame and the per-image table that ``records`` compile to (in order)."""
    rows = [{**row, "cell_hash": record["cell_hash"]} for record in records for row in record["rows"]]
    frame = rows_frame(rows) if rows else empty_frame()
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
    return frame, table[list(PER_IMAGE_COLUMNS)].astype(PER_IMAGE_COLUMNS)


def _counts_agree(frame: pd.DataFrame, index: list[tuple[str, int, int]], column: int) -> bool:
    """Whether ``frame`` holds, per cell hash, the rows ``index`` lists in ``column`` (1: results, 2: per-image)."""
    expected = {entry[0]: entry[column] for entry in index if entry[column]}
    actual = frame["cell_hash"].astype(str).value_counts().to_dict() if len(frame) else {}
    return {h: int(n) for h, n in actual.items()} == expected


def _read_examples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        images, ssim = archive["images"], archive["ssim"]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"'images' must be uint8 [N, C, H, W], got {images.dtype} {images.shape}")
    return images, ssim


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


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


def warning_line(message: str) -> None:
    """A warning as one line on stderr, ``scramblebench: warning: ...`` (never a Python warning's two lines)."""
    print(f"scramblebench: warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def configuration_difference(stored: Any, current: Any, there: str = "there", here: str = "here") -> str | None:
    """The first key where the configuration ``current`` differs from ``stored`` (run.json's), as
    ``seed is 0 there, 5 here`` (None: the same)."""

    def first(a: Any, b: Any, path: str) -> str | None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    return f"{path}{key} is {'set' if key in a else 'unset'} {there}, {'set' if key in b else 'unset'} {here}"
                found = first(a[key], b[key], f"{path}{key}.")
                if found:
                    return found
            return None
        return None if a == b else f"{path.rstrip('.')} is {json.dumps(a)} {there}, {json.dumps(b)} {here}"

    return first(_as_json(stored), _as_json(current), "")


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
#: the runner's mark on a folder it made; also flock-ed (shared) by every run working in the folder,
#: which a --no-resume clear needs exclusively
MARKER_FILE = ".scramblebench-run"
#: flock-ed exclusively while the folder's records are compiled, cleared or merged and run.json written;
#: in the folder itself, not in a folder a clear removes
LOCK_FILE = ".scramblebench-lock"
#: the runner's own files in a run folder (``cache/`` of trained models is kept: ``--refresh-cache``)
RUN_OUTPUTS = (RESULTS_FILE, PER_IMAGE_FILE, RUN_FILE, "report.md", "tables.tex", "tables.html", "tables", "errors.log", EXAMPLES_DIR,
               "figures", CELLS_DIR, RESTORATIONS_DIR)
