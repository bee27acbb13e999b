"""Shared by tests/ and benchmarks/: the network guard and golden files (``--device`` and
``single_thread`` come from scramblebench's pytest plugin, ``harness/conformance/plugin.py``,
which plugin authors load with ``-p harness.conformance.plugin``)."""

from __future__ import annotations

import socket

import pytest

pytest_plugins = ["harness.conformance.plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen-golden", action="store_true", help="rewrite golden files instead of comparing")


@pytest.fixture(scope="session")
def regen_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden"))


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
