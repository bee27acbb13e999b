"""The results store of a run folder: tidy ``results.csv`` rows, ``per_image.csv`` and ``run.json``.

One row of results.csv is one measurement of one cell; one row of per_image.csv is one
per-image score of one cell (SSIM, PSNR, identification of every restored image, correctness
of every classified one), so distributions, paired comparisons and intervals are computed from
stored results.  Reports are rendered only from these files, and resume reads them to skip
finished cells.  Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from harness.cache import atomic_write_bytes

RESULTS_FILE = "results.csv"
PER_IMAGE_FILE = "per_image.csv"
RUN_FILE = "run.json"
EXAMPLES_DIR = "examples"

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
}
KINDS = ("accuracy", "security", "key_space")
STATUSES = ("ok", "failed", "n/a")
CELL_COLUMNS = ("kind", "dataset", "cipher", "classifier", "attack", "key_condition")


class ResultsSchemaError(ValueError):
    """results.csv or run.json does not follow the schema."""


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

    def load(self) -> pd.DataFrame:
        if not self.results_path.exists():
            return empty_frame()
        try:
            frame = pd.read_csv(self.results_path, dtype=str, keep_default_na=False)
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

    def replace_cell(self, frame: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Drop earlier rows of the rows' cells (e.g. a failed try), append these, save."""
        ids = {cell_id(r) for r in rows}
        keep = [cell_id(r) not in ids for r in frame.to_dict("records")]
        updated = pd.concat([frame[keep], rows_frame(rows)], ignore_index=True) if rows else frame
        self.save(updated)
        return updated

    def finished_cells(self, frame: pd.DataFrame) -> set[tuple[str, ...]]:
        """Cells whose rows are all ok or n/a: resume never recomputes these."""
        failed = {cell_id(r) for r in frame[frame["status"] == "failed"].to_dict("records")}
        return {cell_id(r) for r in frame.to_dict("records")} - failed

    # -- per-image scores -----------------------------------------------------------------
    def load_per_image(self) -> pd.DataFrame:
        """The per-image table (empty when the run has none yet)."""
        if not self.per_image_path.exists():
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PER_IMAGE_COLUMNS.items()})
        try:
            frame = pd.read_csv(self.per_image_path, dtype={c: str for c, t in PER_IMAGE_COLUMNS.items() if t == "string"}, keep_default_na=False)
            if list(frame.columns) != list(PER_IMAGE_COLUMNS):
                raise ValueError(f"columns must be {list(PER_IMAGE_COLUMNS)}, got {list(frame.columns)}")
            return frame.astype(PER_IMAGE_COLUMNS)
        except Exception as exc:
            raise ResultsSchemaError(
                f"{self.per_image_path} cannot be read ({type(exc).__name__}: {exc}); "
                "move it away or start a fresh run with --no-resume"
            ) from exc

    def replace_per_image(self, cell: dict[str, Any], scores: dict[str, np.ndarray]) -> None:
        """Replace one cell's per-image rows with ``scores`` (metric -> values by image id)."""
        frame = self.load_per_image()
        key = cell_id(cell)
        keep = [cell_id(r) != key for r in frame[list(CELL_COLUMNS)].to_dict("records")]
        parts = [frame[keep]]
        for metric, values in scores.items():
            values = np.asarray(values, dtype=np.float64)
            part = pd.DataFrame({c: [str(cell.get(c) or "")] * values.size for c in CELL_COLUMNS})
            part["image_id"], part["metric"], part["value"] = np.arange(values.size), metric, values
            parts.append(part.astype(PER_IMAGE_COLUMNS))
        updated = pd.concat(parts, ignore_index=True)
        buffer = io.StringIO()
        updated.to_csv(buffer, index=False, float_format="%.10g")
        atomic_write_bytes(self.per_image_path, buffer.getvalue().encode())

    def write_run(self, run: dict[str, Any]) -> None:
        atomic_write_bytes(self.run_path, dumps_strict(run).encode())

    def read_run(self) -> dict[str, Any]:
        if not self.run_path.exists():
            raise FileNotFoundError(f"{self.run_path} not found: not a scramblebench run folder")
        return json.loads(self.run_path.read_text())

    # -- example images for the figures ------------------------------------------------
    def example_path(self, dataset: str, cipher: str, attack: str) -> Path:
        return self.examples_dir / dataset / f"{cipher}__{attack}.npz"

    def save_examples(self, path: Path, images: np.ndarray, ssim: np.ndarray | None = None) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images, ssim=np.asarray([] if ssim is None else ssim, dtype=np.float64))
        atomic_write_bytes(path, buffer.getvalue())

    @staticmethod
    def load_examples(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with np.load(path) as archive:
            return archive["images"], archive["ssim"]

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
RUN_OUTPUTS = (RESULTS_FILE, PER_IMAGE_FILE, RUN_FILE, "report.md", "tables.tex", "tables.html", "errors.log", EXAMPLES_DIR, "figures")
