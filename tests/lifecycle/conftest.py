"""Fixtures of the lifecycle tier: real ``sanet-serve`` processes (``testing.servers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testing.servers import Spawned, sanet_serve_command


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Spawned]]:
    """``launch(*flags, env=..., module=False)`` starts the service (not yet ready); every
    process started is stopped after the test."""
    procs: list[Spawned] = []

    def _launch(*flags: str, env: dict[str, str] | None = None, module: bool = False) -> Spawned:
        cmd = [*sanet_serve_command(module), *flags]
        proc = Spawned(cmd, tmp_path / f"server{len(procs)}.log", env)
        procs.append(proc)
        return proc

    yield _launch
    for proc in procs:
        proc.stop(grace=10)
