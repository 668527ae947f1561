"""Real ``sanet-serve`` processes on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.net import free_port

BIN = Path(sys.executable).with_name("sanet-serve")


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        cmd = [*args, "--host", "127.0.0.1", "--port", str(self.port)]
        full_env = {**os.environ, **(env or {})}
        with log.open("wb") as out:
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.popen.poll() is None, f"exited early:\n{self.log}"
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout}s:\n{self.log}")

    def terminate(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        return self.popen.wait(timeout)

    def close(self) -> None:
        self.client.close()
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[object]:
    procs: list[Proc] = []

    def _launch(*flags: str, env: dict[str, str] | None = None, module: bool = False) -> Proc:
        exe = [sys.executable, "-m", "service"] if module else [str(BIN)]
        proc = Proc([*exe, *flags], tmp_path / f"server{len(procs)}.log", env)
        procs.append(proc)
        return proc

    yield _launch
    for p in procs:
        p.close()
