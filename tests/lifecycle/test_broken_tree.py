"""A tree that cannot serve exits non-zero within seconds and leaves no process behind.

A shim package first on PYTHONPATH breaks one import: ``uvicorn`` (every front end needs it,
so the supervisor fails before it forks), or ``uvloop`` (imported by uvicorn only when a
front end starts serving, so each front end dies at start and the supervisor gives up).
The tree carries a tag in its environment; no tagged process may outlive it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from testing.servers import Spawned
from testing.tagged import new_tag, tagged
from testing.waiting import poll

Launch = Callable[..., Spawned]
FAST = ("--backend", "null", "--workers", "2")


def _shim(root: Path, package: str, raising: str) -> str:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text(f"raise {raising}\n")
    return os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])


@pytest.mark.parametrize(
    ("package", "raising", "says"),
    [
        ("uvicorn", "ImportError('test shim', name='uvicorn')", "uvicorn is missing"),
        ("uvloop", "RuntimeError('test shim: a front end fails at start')", "died 5 times"),
    ],
)
def test_broken_front_end_ends_the_tree(
    launch: Launch, tmp_path: Path, package: str, raising: str, says: str
) -> None:
    env = {**new_tag(), "PYTHONPATH": _shim(tmp_path / "shim", package, raising)}
    start = time.monotonic()
    proc = launch(*FAST, env=env, module=True)
    status = proc.wait(60)
    took = time.monotonic() - start
    assert status != 0, proc.tail()
    assert says in proc.log, proc.tail()
    assert took < 30, f"{took:.1f}s"
    poll(lambda: not tagged(env), 10, "every process of the tree gone")


def test_children_end_when_the_supervisor_is_killed(launch: Launch) -> None:
    """SIGKILL gives the supervisor no chance to stop its children: they get SIGTERM from
    the kernel (parent-death signal) and drain out on their own."""
    env = new_tag()
    proc = launch(*FAST, env=env, module=True).wait_ready(60)
    assert len(tagged(env)) >= 4  # supervisor, engine, two front ends
    proc.popen.kill()
    proc.popen.wait(10)
    poll(lambda: not tagged(env), 30, "the engine and front ends gone")
