"""The one way a test waits: poll a condition until it holds, within a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float, what: str, every: float = 0.02) -> T:
    """Call ``probe`` until it returns something truthy and return that value.

    Raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds. A probe that knows the
    condition can no longer hold (the process exited) raises instead of returning.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)
