"""The pytest fixtures the in-process tiers share: ``checkpoint`` and ``serve``.

``tests/conftest.py`` and ``bench/tests/conftest.py`` import them, so a test of a benchmark
tool and a test of the service start the real app the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from testing.app import ARCH, BASE_SETTINGS, Running
from testing.checkpoints import separating_tiny_checkpoint


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
