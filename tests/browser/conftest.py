"""The browser tier: the real app (testing.app.Running) opened in headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.app import ARCH, BASE_SETTINGS, Running
from testing.browser import chromium
from testing.checkpoints import separating_tiny_checkpoint


@pytest.fixture(scope="session")
def app(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Two models: one from a checkpoint, ``plain`` with random weights (the banner).

    Needs ``browser`` first: without Chromium the tier skips before any tree starts."""
    ckpt = separating_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "sa_tiny.pth.tar")
    with Running({**BASE_SETTINGS, "models": f"{ARCH}={ckpt},plain={ARCH}"}) as running:
        yield running


@pytest.fixture(scope="module")
def serve_with_key(browser: Any, serve: Callable[..., Any]) -> Iterator[Running]:
    """One model, API keys on (``browser`` first, as for ``app``)."""
    with serve(api_keys="s3cret") as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: SANET_SCREENSHOT_DIR (docs/, for the docs), else tmp_path."""
    return Path(os.environ.get("SANET_SCREENSHOT_DIR") or tmp_path)
