"""The only place that draws progress during a run; cells and components only report it."""

from __future__ import annotations

import sys
import time

from harness.progress import ProgressCallback
from harness.run.plan import Cell


class ProgressDisplay:
    """The only place that draws progress: a tqdm bar (on a terminal), plain lines, or nothing.

    Plain mode writes one line per finished cell with its time, and for a long cell a heartbeat
    line at most every ``heartbeat`` seconds, so a log file never fills with redraws.
    """

    def __init__(self, mode: str, total: int, heartbeat: float = 60.0, stream=None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "plain"
        self.mode, self.total, self.heartbeat = mode, total, heartbeat
        self.bar = None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="cell", file=self.stream, dynamic_ncols=True)
        self._done = 0
        self._last_line: dict[tuple[str, ...], float] = {}
        self._started: dict[tuple[str, ...], float] = {}

    def for_cell(self, cell: Cell) -> ProgressCallback | None:
        if self.mode == "none":
            return None
        self._started.setdefault(cell.id, time.monotonic())

        def update(done: int, total: int, message: str) -> None:
            text = f"{cell.cipher}/{cell.classifier or cell.attack}: {message} {done}/{total}"
            if self.bar is not None:
                self.bar.set_postfix_str(text, refresh=True)
                return
            now = time.monotonic()
            if now - self._last_line.setdefault(cell.id, now) >= self.heartbeat:
                self._last_line[cell.id] = now
                print(f"  ... {text} ({now - self._started[cell.id]:.0f} s)", file=self.stream, flush=True)

        return update

    def cell_done(self, cell: Cell, status: str, seconds: float = 0.0) -> None:
        self._done += 1
        self._started.pop(cell.id, None)
        if self.bar is not None:
            self.bar.update(1)
        elif self.mode == "plain":
            timing = "" if status == "cached" else f" in {seconds:.0f} s"
            print(f"[{self._done}/{self.total}] [{status}] {cell.label}{timing}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
