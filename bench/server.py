"""Spawn sanet-serve for a benchmark: ``testing.servers`` starts it, waits, stops it.

The benchmark and the tests start the service one way, so a benchmark never measures a
server that the tests would not recognise as ready.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

from testing import servers

log = logging.getLogger("bench.server")


def setting(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"bad server setting {pair!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def parse_config(spec: str) -> tuple[str, dict[str, str]]:
    """``LABEL[:K=V,K=V...]`` -> (label, environment)."""
    label, _, pairs = spec.partition(":")
    return label, dict(setting(pair) for pair in pairs.split(",") if pair)


@contextlib.contextmanager
def spawned(cmd: list[str], env: dict[str, str], ready_timeout: float) -> Iterator[str]:
    """Run the server on a free 127.0.0.1 port until ready; SIGTERM it (then wait) on exit.

    Yields its base URL; ``RuntimeError`` with the end of its log if it never gets ready.
    """
    with spawned_process(cmd, env, ready_timeout) as proc:
        yield proc.url


@contextlib.contextmanager
def spawned_process(
    cmd: list[str],
    env: dict[str, str],
    ready_timeout: float,
    port: int | None = None,
    ready_path: str = "/readyz",
) -> Iterator[servers.Spawned]:
    """:func:`spawned`, yielding the process itself (its pid, log); ``port`` when the command
    names it, ``ready_path`` for a server that is not sanet-serve."""
    with tempfile.TemporaryDirectory(prefix="sanet-bench-") as tmp:
        log_path = Path(tmp) / "server.log"
        log.info("starting %s with %s", shlex.join(cmd), env)
        with servers.spawned(
            cmd, log_path, env, ready_within=ready_timeout, port=port, ready_path=ready_path
        ) as proc:
            log.info("server ready on %s", proc.url)
            yield proc
        log.info("server on %s exited with status %s", proc.url, proc.popen.returncode)
