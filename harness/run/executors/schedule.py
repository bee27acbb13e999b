"""The scheduler the parallel executors share: submit a cell once the cells it depends on have
finished (``vit_keyed`` after the plain ``vit``, a model-holder attack after the models it reads),
so no two workers train the same cached model."""

from __future__ import annotations

from typing import Any, Callable, Hashable

from harness.run.cells import CellOutcome
from harness.run.plan import Cell, dependencies

#: a finished handle with its outcome
Done = tuple[Hashable, CellOutcome]


def schedule(
    todo: list[Cell],
    submit: Callable[[Cell], Hashable],
    wait_any: Callable[[list[Any]], list[Done]],
    finish: Callable[[Cell, CellOutcome], None],
    capacity: int | None = None,
) -> None:
    """Submit cells as their dependencies finish (at most ``capacity`` at once); ``wait_any``
    returns (handle, outcome) of finished handles, which go to ``finish``."""
    planned = {cell.id for cell in todo}
    done: set[tuple[str, ...]] = set()
    pending: list[Cell] = list(todo)
    running: dict[Hashable, Cell] = {}
    while pending or running:
        for cell in list(pending):
            if capacity is not None and len(running) >= capacity:
                break
            if any(needed.id in planned and needed.id not in done for needed in dependencies(cell)):
                continue
            pending.remove(cell)
            running[submit(cell)] = cell
        for handle, outcome in wait_any(list(running)):
            cell = running.pop(handle)
            finish(cell, outcome)
            done.add(cell.id)
