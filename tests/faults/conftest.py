"""Fixtures of the fault tier: the real app over real HTTP, as in tests/api, and raw sockets.

Each test here is one row of issue 11's table: a hostile client, a faulty cache or a
shutdown under load that the service once did not hold up against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from tests.support.app import ARCH, BASE_SETTINGS, Running
from tests.support.checkpoints import separating_tiny_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return separating_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sa_tiny.pth.tar")


@pytest.fixture(scope="session")
def serve(checkpoint: Path) -> Callable[..., Any]:
    """``with serve(**overrides) as running:`` a fresh app on its own port."""

    @contextmanager
    def _serve(**overrides: Any) -> Iterator[Running]:
        opts = {**BASE_SETTINGS, "models": f"{ARCH}={checkpoint}", **overrides}
        with Running(Settings(**opts)) as running:
            yield running

    return _serve
