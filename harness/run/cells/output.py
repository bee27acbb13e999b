"""What a cell produced, in the two shapes the runner passes on: :class:`CellOutput` (rows,
per-image scores, example images) and :class:`CellOutcome` (the output or the failure, and the
seconds it took), which is what every executor hands back for every cell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.restorations import Restorations


@dataclass
class CellOutput:
    """What one cell computed: its result rows, per-image scores (metric -> values by image id),
    example images (name, uint8 images, their SSIM or None) and, for a security cell of a run with
    ``--log-restorations``, every restored image; the runner stores them (an executor pickles it
    back from a worker)."""

    rows: list[dict[str, Any]]
    per_image: dict[str, np.ndarray] | None = None
    examples: list[tuple[str, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    restorations: Restorations | None = None


@dataclass(frozen=True)
class Failure:
    """Why a cell failed: one line for its row, the traceback for errors.log."""

    message: str
    traceback: str


@dataclass(frozen=True)
class CellOutcome:
    """One computed cell: its output, or its failure; and its wall-clock seconds."""

    output: CellOutput | None
    failure: Failure | None
    seconds: float


def one_line(exc: BaseException) -> str:
    """An exception as the one line a failed cell's row carries."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
