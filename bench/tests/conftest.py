"""The tests of the benchmark tools themselves (the load generator, its reports, the
end-to-end comparison): tier ``bench``, collected by ``make test`` beside ``tests/``.

They use the benchmark code and ``testing/`` only; ``tests/`` and ``bench/`` never import
each other.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from testing.fixtures import checkpoint, serve

__all__ = ["checkpoint", "serve"]

torch.set_num_threads(min(2, os.cpu_count() or 1))

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test here with the ``bench`` tier (``pytest -m bench`` selects them)."""
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker("bench")
