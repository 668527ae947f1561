"""Test-wide settings: the thread count the benchmarks and the service use, the tier
markers, and the app fixtures the in-process tiers share (``checkpoint``, ``serve``). Each
tier is a directory; every test in it carries the tier's marker, so ``pytest -m unit`` (or
api, browser, faults, lifecycle, deploy, cuda) selects one tier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from testing.app import ARCH, BASE_SETTINGS, Running
from testing.checkpoints import separating_tiny_checkpoint

torch.set_num_threads(min(2, os.cpu_count() or 1))

TESTS = Path(__file__).resolve().parent
TIERS = frozenset({"unit", "api", "browser", "faults", "lifecycle", "deploy", "cuda"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier of its directory (before ``-m`` deselects)."""
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(parts[0])


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SA-ResNet in the authors' layout, written once per session."""
    return separating_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sa_tiny.pth.tar")


@pytest.fixture(scope="session")
def serve(checkpoint: Path) -> Callable[..., Any]:
    """``with serve(**overrides) as running:`` a fresh app on its own port."""

    @contextmanager
    def _serve(**overrides: Any) -> Iterator[Running]:
        opts = {**BASE_SETTINGS, "models": f"{ARCH}={checkpoint}", **overrides}
        with Running(opts) as running:
            yield running

    return _serve
