"""pytest plugin of scramblebench (``-p harness.conformance.plugin``): what the contract suites use.

``--device cuda`` runs the device-aware tests on a GPU; ``single_thread`` runs a module with one
torch thread (tiny networks gain nothing from more, and a shared machine makes them far slower).
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for device-aware tests (cpu, cuda, cuda:N)")


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
