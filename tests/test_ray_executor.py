"""``--executor ray``: one Ray task per cell on a real local Ray instance gives a serial run's rows.

Needs the optional extra (``pip install -e '.[ray]'``); CI installs it (``.ci/run``), elsewhere
the module is skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed (pip install -e '.[ray]'); CI runs these tests")

from harness.run import Runner, plan  # noqa: E402
from harness.run.cli import main  # noqa: E402
from harness.results import ResultStore  # noqa: E402
from tests.test_cell_records import GRID, assert_same_rows, serial_grid  # noqa: E402,F401  (serial_grid: a fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance with 2 CPUs, its workers importing this checkout; shut down after."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_executor_gives_exactly_the_rows_of_a_serial_run(tmp_path, serial_grid, local_ray) -> None:
    serial, config = serial_grid
    out = tmp_path / "ray"
    order: list[str] = []
    original = Runner.write_record

    def record(runner, cell, output, elapsed=float("nan")):
        order.append(f"{cell.cipher}/{cell.classifier or cell.attack}")
        return original(runner, cell, output, elapsed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runner, "write_record", record)  # records are written by the driver
        assert main(["--config", str(config), *GRID, "--out", str(out), "--executor", "ray"], stdout=lambda line: None) == 0
    assert len(order) == 12 and order.index("proposed/vit_keyed") > order.index("plain/vit")  # vit_keyed waited
    assert_same_rows(serial, out)
    assert ray.is_initialized()  # an instance the executor did not start is left running for its owner
    # a resumed run finds every record: nothing is submitted
    order.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Runner, "write_record", record)
        assert main(["--config", str(config), *GRID, "--out", str(out), "--executor", "ray"], stdout=lambda line: None) == 0
    assert order == []


def test_ray_resources_follow_the_cell_and_the_device(tmp_path) -> None:
    from harness.run.executors.ray import resources

    cpu, gpu = "cpu", "cuda"
    train = plan.Cell("accuracy", "natural", "plain", classifier="vit")
    learned = plan.Cell("security", "natural", "le", attack="itn")
    none = plan.Cell("security", "natural", "le", attack="none")
    key_space = plan.Cell("key_space", "natural", "le")
    assert all(resources(cpu, c) == {"num_cpus": 1} for c in (train, learned, none, key_space))
    assert resources(gpu, train)["num_gpus"] == 1 and resources(gpu, learned)["num_gpus"] == 1
    assert resources(gpu, none)["num_gpus"] < 1 and "num_gpus" not in resources(gpu, key_space)
