"""pytest plugin of scramblebench (``-p harness.conformance.plugin``): what the contract suites use.

``--device cuda`` runs the device-aware tests on a GPU (each is marked ``device``: ``-m device``
selects them); ``single_thread`` runs a module with one torch thread (tiny networks gain nothing
from more, and a shared machine makes them far slower).
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for device-aware tests (cpu, cuda, cuda:N)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "device: uses the --device fixture (set on collection; `-m device` runs only these)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that takes ``device``, so a GPU run can select exactly the device-aware tests."""
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("--device cuda asked for but CUDA is not available")
    return torch.device(name)


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run torch single-threaded for a module that trains tiny networks; the setting is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
