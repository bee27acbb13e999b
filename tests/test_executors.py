"""Executors as launchers: they get ``(todo, ctx, finish)``, call the cells and never the runner;
the torchrun leader and followers are tested with a fake world, no process group needed."""

from __future__ import annotations

import pickle

import pytest

from harness.run import cells
from harness.run.cells import CellContext, CellOutput
from harness.run.config import resolve_config
from harness.run.executors import make_executor
from harness.run.executors.local import PoolExecutor, SerialExecutor
from harness.run.executors.schedule import schedule
from harness.run.executors.torchrun import DistributedCellFailed, TorchrunExecutor, follow
from harness.run.plan import Cell
from harness.world import SingleProcess

KEY_SPACE = Cell("key_space", "natural", "le")
VIT = Cell("accuracy", "natural", "plain", classifier="vit")
KEYED = Cell("accuracy", "natural", "proposed", classifier="vit_keyed")
ATTACK = Cell("security", "natural", "le", attack="none")


class FakeWorld(SingleProcess):
    """A world of two ranks whose broadcast hands out what the leader sent, logging collectives."""

    def __init__(self, rank: int, sent: list | None = None) -> None:
        self.rank, self.size, self.sent, self.calls = rank, 2, sent if sent is not None else [], []

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        self.calls.append("barrier")

    def broadcast(self, value):
        if self.rank == 0:
            self.sent.append(value)
        return self.sent[-1]


@pytest.fixture()
def ctx(tmp_path) -> CellContext:
    return CellContext(resolve_config("quick"), tmp_path)


@pytest.fixture()
def computed(monkeypatch) -> list[Cell]:
    done: list[Cell] = []

    def compute(cell: Cell, ctx: CellContext) -> CellOutput:
        done.append(cell)
        if cell.classifier == "vit_keyed" and ctx.config.get("fail_keyed"):
            raise RuntimeError("simulated")
        return CellOutput([{**ctx.row_base(cell), "status": "ok", "metric": "m", "value": 1.0}])

    monkeypatch.setattr(cells, "compute_cell", compute)
    return done


def test_the_context_pickles_without_its_caches_and_progress(ctx) -> None:
    ctx.progress = lambda cell: None
    ctx.dataset("natural", "test", (16, 16))
    copy = pickle.loads(pickle.dumps(ctx))
    assert copy.progress is None and copy._data == {} and copy.config == ctx.config and copy.run_dir == ctx.run_dir
    assert copy.dataset("natural", "test", (16, 16)).stored.shape == ctx.dataset("natural", "test", (16, 16)).stored.shape


def test_the_scheduler_waits_for_the_cell_a_cell_depends_on() -> None:
    order: list[Cell] = []
    running: list = []
    schedule([KEYED, VIT, ATTACK], lambda cell: running.append(cell) or cell,
             lambda handles: [(h, cells.CellOutcome(None, None, 0.0)) for h in handles[:1]],
             lambda cell, outcome: order.append(cell), capacity=2)
    assert order.index(VIT) < order.index(KEYED) and set(order) == {VIT, KEYED, ATTACK}


def test_make_executor_names_the_launchers() -> None:
    assert isinstance(make_executor("local"), PoolExecutor) and make_executor("local").workers == 1  # isolated by default
    assert isinstance(make_executor("local", in_process=True), SerialExecutor)
    assert isinstance(make_executor("local", workers=2), PoolExecutor)
    assert isinstance(make_executor("torchrun"), TorchrunExecutor)
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("slurm")


def test_the_torchrun_leader_runs_accuracy_cells_first_and_meets_after_each(ctx, computed) -> None:
    world, finished = FakeWorld(0), []
    TorchrunExecutor(world).run([KEY_SPACE, VIT, KEYED, ATTACK], ctx, lambda cell, outcome: finished.append(cell))
    assert finished == computed == [VIT, KEYED, KEY_SPACE, ATTACK]
    assert world.calls == ["barrier", "barrier"]
    follower = FakeWorld(1, world.sent)
    computed.clear()
    follow([KEY_SPACE, VIT, KEYED, ATTACK], ctx, follower)
    assert computed == [VIT, KEYED] and follower.calls == ["barrier", "barrier"]  # it writes nothing, trains what rank 0 trains


def test_a_failed_accuracy_cell_is_recorded_then_stops_the_torchrun_run(ctx, computed) -> None:
    ctx.config["fail_keyed"] = True
    world, finished = FakeWorld(0), []
    with pytest.raises(DistributedCellFailed, match="simulated"):
        TorchrunExecutor(world).run([VIT, KEYED, ATTACK], ctx, lambda cell, outcome: finished.append((cell, outcome.failure)))
    assert [c for c, _ in finished] == [VIT, KEYED] and finished[1][1].message == "RuntimeError: simulated"
