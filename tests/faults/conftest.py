"""Fixtures of the fault tier: the real app over real HTTP, as in tests/api, and raw sockets.

Each test here is one fault: a hostile client, a faulty cache or a shutdown under load. A test
that needs other settings, or leaves the tree changed, starts its own with ``serve``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testing.app import Running


@pytest.fixture(scope="session")
def tree(serve: Callable[..., Any]) -> Iterator[Running]:
    """One tree with the default test settings, for the faults that leave it as they found it
    (every connection closed, every slot free)."""
    with serve() as running:
        yield running
