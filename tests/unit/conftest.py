"""Unit-test fixtures: batchers that are always stopped, whatever the test did."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testing.batching import Harness


@pytest.fixture
def batcher() -> Iterator[Callable[..., Harness]]:
    """Make started batchers (``Harness``, inside the async test); each one's held batch is
    released and the batcher stopped in teardown."""
    made: list[Harness] = []

    def make(fn: Callable[[list[Any]], Any], **kw: Any) -> Harness:
        made.append(Harness(fn, **kw))
        return made[-1]

    yield make
    for h in made:
        h.release()
        h.batcher.stop(5)
