"""Progress reporting: components call a callback; only the runner draws bars."""

from __future__ import annotations

from typing import Callable, Optional

#: ``progress(done, total, message)``: ``done`` of ``total`` steps finished in the current phase
ProgressCallback = Callable[[int, int, str], None]


def report(progress: Optional[ProgressCallback], done: int, total: int, message: str) -> None:
    """Call ``progress`` if one was given (components never print)."""
    if progress is not None:
        progress(done, total, message)
