"""Fixture for tests that train tiny networks: run torch single-threaded for their duration.

Tiny models gain nothing from intra-op threads, and on a shared machine a second thread waiting
for a busy core makes them an order of magnitude slower.  The caller's setting is restored.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
