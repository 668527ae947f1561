"""Fixtures of the API tier: the real app over real HTTP (``testing.app.Running``).

The model is the tiny SA-ResNet from ``separating_tiny_checkpoint``, written once per session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testing.app import Running


@pytest.fixture(scope="session")
def api(serve: Callable[..., Any]) -> Iterator[Running]:
    """The shared app for tests that do not disturb it."""
    with serve() as running:
        yield running
