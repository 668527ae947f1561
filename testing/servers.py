"""Servers for tests and benchmarks, on a free 127.0.0.1 port, ready when they say so.

``InThread`` runs an ASGI app under uvicorn in a daemon thread; ``Spawned`` runs a real process
(``sanet-serve``, a stand-in, Prometheus). Both count as started once their readiness path
answers 200, give up early when the server died, and stop with ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from testing.ports import free_port
from testing.waiting import poll


def sanet_serve_command(module: bool = False) -> list[str]:
    """How to start the service: the console script next to this Python, else ``-m service``."""
    script = Path(sys.executable).with_name("sanet-serve")
    if module or not script.exists():
        return [sys.executable, "-m", "service"]
    return [str(script)]


def _status(client: httpx.Client, path: str) -> int | None:
    try:
        return client.get(path, timeout=2).status_code
    except httpx.HTTPError:
        return None


class InThread:
    """An ASGI app under uvicorn in a daemon thread, with an httpx client on its URL.

    ``failed`` tells the wait for readiness to give up (an app whose start-up failed).
    """

    def __init__(
        self,
        app: Any,
        ready_path: str = "/readyz",
        failed: Callable[[], bool] = lambda: False,
        config: Callable[..., uvicorn.Config] = uvicorn.Config,
    ) -> None:
        """``config(app, **options)`` builds the uvicorn config (the service passes its own,
        ``service.front.http.server.server_config``, so tests run its HTTP limits)."""
        self.app, self.ready_path, self._failed = app, ready_path, failed
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        built = config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(built)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _ready(self) -> bool:
        if not self.thread.is_alive() or self._failed():
            raise RuntimeError(f"the app at {self.url} failed to start")
        return _status(self.client, self.ready_path) == 200

    def start(self, ready_within: float = 60) -> InThread:
        """Serve; return once ``ready_path`` answers 200 (stopped again if it never does)."""
        self.thread.start()
        try:
            poll(self._ready, ready_within, f"{self.url}{self.ready_path}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (it drains through the app's lifespan) and join its thread."""
        self.client.close()
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(15)

    def __enter__(self) -> InThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Spawned:
    """A real process serving HTTP on 127.0.0.1, its output in ``log``.

    The port is in ``SANET_HOST``/``SANET_PORT`` of its environment (the service's own
    settings); a process that takes it another way gets ``port`` in its command line.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        ready_path: str = "/readyz",
    ) -> None:
        self.cmd, self.log_path, self.ready_path = list(cmd), log, ready_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "SANET_GRPC_PORT": "0",  # no fixed port shared between test processes
            **(env or {}),
            "SANET_HOST": "127.0.0.1",
            "SANET_PORT": str(self.port),
        }
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env
            )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    @property
    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for failure messages."""
        return "\n".join(self.log.splitlines()[-lines:])

    def _ready(self) -> bool:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.cmd[0]} exited with status {self.popen.returncode}:\n{self.tail()}"
            )
        return _status(self.client, self.ready_path) == 200

    def wait_ready(self, timeout: float = 120) -> Spawned:
        """Return once ``ready_path`` answers 200; ``RuntimeError`` with the log otherwise."""
        try:
            poll(self._ready, timeout, f"{self.url}{self.ready_path}", every=0.05)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; log:\n{self.tail()}") from None
        return self

    def terminate(self) -> None:
        """SIGTERM: the service drains, then exits."""
        self.popen.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        """The exit status, once the process exited within ``timeout`` seconds."""
        return self.popen.wait(timeout)

    def stop(self, grace: float = 20) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit status."""
        self.client.close()
        if self.popen.poll() is None:
            self.terminate()
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


@contextlib.contextmanager
def spawned(
    cmd: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    ready_within: float = 120,
    grace: float = 60,
    port: int | None = None,
    ready_path: str = "/readyz",
) -> Iterator[Spawned]:
    """A ready ``Spawned`` for the ``with`` block; stopped (SIGTERM, then SIGKILL) after it."""
    proc = Spawned(cmd, log, env, port=port, ready_path=ready_path)
    try:
        yield proc.wait_ready(ready_within)
    finally:
        proc.stop(grace)
