"""Test-wide settings: the thread count the benchmarks and the service use, the tier
markers, and the app fixtures the in-process tiers share (``checkpoint``, ``serve``, from
``testing.fixtures``). Each tier is a directory; every test in it carries the tier's marker,
so ``pytest -m unit`` (or api, browser, faults, lifecycle, deploy, cuda) selects one tier.
The tests of the benchmark tools are ``bench/tests`` (tier ``bench``). An ``async def`` test
runs in a fresh event loop of its own (``pytest_pyfunc_call`` below).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from pathlib import Path

import pytest
import torch

from testing.fixtures import checkpoint, serve

__all__ = ["checkpoint", "serve"]  # the fixtures every tier shares (testing.fixtures)

torch.set_num_threads(min(2, os.cpu_count() or 1))

TESTS = Path(__file__).resolve().parent
TIERS = frozenset({"unit", "api", "browser", "faults", "lifecycle", "deploy", "cuda"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier of its directory (before ``-m`` deselects)."""
    for item in items:
        path = item.path.resolve()
        if not path.is_relative_to(TESTS):
            continue  # bench/tests marks its own
        parts = path.relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(parts[0])


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test to completion in a new event loop (``asyncio.run``)."""
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    names = inspect.signature(test).parameters
    asyncio.run(test(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True
