"""The real service over real HTTP: ``sanet-serve`` spawned as its whole process tree.

``Running`` starts the supervisor with the settings as ``SANET_*`` variables and waits for
/readyz; the tiny SA-ResNet it serves comes from ``checkpoints.separating_tiny_checkpoint``.
``running.hold_engine()`` stops the engine process (SIGSTOP) so that requests pile up the way
they do behind a slow batch; ``release()`` lets it go on (SIGCONT).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from service.config import Settings
from service.front.tree_metrics import read_process, tree_pids
from testing.metrics import read_metric
from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

ARCH = "sanet_tiny"
BASE_SETTINGS: dict[str, Any] = {
    "backend": "torchscript",
    "device": "cpu",
    "max_batch_size": 4,
    "max_delay_ms": 2,
    "max_queue": 64,
    "max_images_per_request": 8,
    "max_body_bytes": 2 * 2**20,
    "max_pixels": 4_000_000,
    "preprocess_workers": 2,
    "drain_timeout_s": 5,
    "workers": 2,
    "grpc_port": 0,  # tests that speak gRPC give a free port
}


def settings_env(opts: dict[str, Any]) -> dict[str, str]:
    """``SANET_*`` variables for settings given as keyword values."""
    env = {}
    for key, value in opts.items():
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        env[f"SANET_{key.upper()}"] = text
    return env


class Running(Spawned):
    """A started service tree: URL, settings, an httpx client, and its processes."""

    def __init__(self, opts: dict[str, Any]) -> None:
        self.settings = Settings(**opts)
        self._logs = Path(tempfile.mkdtemp(prefix="sanet-test-"))
        env = settings_env({k: v for k, v in opts.items() if k not in ("host", "port")})
        env.setdefault("SANET_CACHE_DIR", str(self._logs / "cache"))
        super().__init__(sanet_serve_command(), self._logs / "server.log", env)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0.0 when absent)."""
        return read_metric(self.client, name, **labels)

    def process(self, name: str) -> int:
        """The pid of the tree's process called ``name`` (``sanet-engine``, ``sanet-front-0``)."""
        for pid in tree_pids(self.popen.pid):
            found = read_process(pid)
            if found is not None and found[0] == name:
                return pid
        raise LookupError(f"no process {name} under {self.popen.pid}:\n{self.tail()}")

    @contextmanager
    def engine_held(self) -> Iterator[EngineHold]:
        """The engine stopped for the block (let go early with ``release()``)."""
        hold = EngineHold(self.process("sanet-engine"))
        try:
            yield hold
        finally:
            hold.release()

    def wait_slots(self, n: int, timeout: float = 30) -> None:
        """Until ``n`` shared-memory slots are held (admitted images)."""
        poll(lambda: self.metric("sanet_slots_used") == n, timeout, f"{n} slots held")

    def start(self, ready_within: float = 120) -> Running:
        self.wait_ready(ready_within)
        return self

    def __enter__(self) -> Running:
        try:
            return self.start()
        except BaseException:
            self.stop(5)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EngineHold:
    """The engine process stopped with SIGSTOP until ``release()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.held = True
        os.kill(pid, signal.SIGSTOP)

    def release(self) -> None:
        if self.held:
            self.held = False
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
