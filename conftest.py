"""Shared by tests/ and benchmarks/: the --device option, the network guard, golden files, threads."""

from __future__ import annotations

import socket
from typing import Iterator

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device for device-aware tests (cpu, cuda)")
    parser.addoption("--regen-golden", action="store_true", help="rewrite golden files instead of comparing")


@pytest.fixture(scope="session")
def regen_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden"))


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("--device cuda asked for but CUDA is not available")
    return torch.device(name)


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to open a network connection."""


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Fail any test that opens a non-local socket: nothing may download at test time."""
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address, *args, **kwargs):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or sock.family == socket.AF_UNIX):
            return real_connect(sock, address, *args, **kwargs)
        raise NetworkAccessError(f"test tried to reach the network: {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket, "create_connection", lambda address, *a, **k: guarded_connect(socket.socket(), address))
        yield


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run torch single-threaded for a module that trains tiny networks.

    Tiny models gain nothing from intra-op threads, and on a shared machine a second thread
    waiting for a busy core makes them an order of magnitude slower; the setting is restored.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
