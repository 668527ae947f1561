"""Spawn sanet-serve for a benchmark: a free 127.0.0.1 port, wait for /readyz, SIGTERM after."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger("bench.server")


def default_server_cmd() -> list[str]:
    script = Path(sys.executable).with_name("sanet-serve")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


def setting(pair: str) -> tuple[str, str]:
    key, sep, value = pair.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"bad server setting {pair!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


def parse_config(spec: str) -> tuple[str, dict[str, str]]:
    """``LABEL[:K=V,K=V...]`` -> (label, environment)."""
    label, _, pairs = spec.partition(":")
    return label, dict(setting(pair) for pair in pairs.split(",") if pair)


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float, out: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get(f"{base}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    out.seek(0)
    tail = out.read()[-4000:].decode(errors="replace")
    raise RuntimeError(f"server at {base} not ready (exit status {proc.poll()}):\n{tail}")


@contextlib.contextmanager
def spawned(cmd: list[str], env: dict[str, str], ready_timeout: float) -> Iterator[str]:
    """Run the server on a free 127.0.0.1 port until ready; SIGTERM it (then wait) on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, **env, "SANET_HOST": "127.0.0.1", "SANET_PORT": str(port)}
    log.info("starting %s on %s with %s", shlex.join(cmd), base, env)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(base, proc, ready_timeout, out)
            yield base
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.info("server on %s exited with status %s", base, proc.returncode)
