"""The servers ``bench.e2e.run`` compares: sanet-serve configs and ``bench.e2e.baseline``
per engine.

A :class:`Server` starts its config on a free 127.0.0.1 port through ``bench.server`` (the
tests' ``Spawned``), waits for its readiness path, and on stop makes sure that no process of
its tree outlives it (LitServe runs an HTTP process, an inference worker and a manager).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import proctree
from bench.server import setting, spawned_process
from testing.ports import free_port
from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

log = logging.getLogger("bench.e2e.run")


@dataclass(frozen=True)
class Config:
    """One server under test: sanet-serve with these settings, or the baseline in an engine."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    engine: str | None = None  # set for the baseline (bench.e2e.baseline --engine)

    @property
    def is_baseline(self) -> bool:
        return self.engine is not None


CONFIGS = {
    c.label: c
    for c in (
        Config("sanet-fp32", {"SANET_BACKEND": "auto"}),
        Config("sanet-bf16", {"SANET_PRECISION": "bf16", "SANET_BF16_MIN_AGREEMENT": "0"}),
        Config("sanet-int8", {"SANET_PRECISION": "int8", "SANET_INT8_MIN_AGREEMENT": "0"}),
        Config("baseline-onnxruntime", engine="onnxruntime"),
        Config("baseline-openvino", engine="openvino"),
    )
}


def default_configs() -> list[str]:
    """Every config, less bf16 on a CPU without native bf16 (it would refuse to start)."""
    from model.cpu import has_bf16

    return [c for c in CONFIGS if c != "sanet-bf16" or has_bf16()]


class Server:
    """A config's running server: started, stopped, restarted, with its tree's pid."""

    def __init__(self, config: Config, args: argparse.Namespace) -> None:
        self.config, self.args = config, args
        self.restart_per_turn = False
        self.engine = config.engine or "?"
        self._stack: contextlib.ExitStack | None = None
        self.proc: Spawned | None = None
        self.ready_s: list[float] = []
        self.report: dict | None = None  # sanet-serve's /v1/models "engine" (auto's choice)

    def _command(self, port: int) -> tuple[list[str], dict[str, str], str]:
        """Command line, environment and readiness path of this config's server."""
        if self.config.is_baseline:
            return self._baseline_command(port), {}, "/health"
        return sanet_serve_command(), self._sanet_env(), "/readyz"

    def _baseline_command(self, port: int) -> list[str]:
        a = self.args
        flags = {
            "--arch": a.arch,
            "--engine": self.config.engine,
            "--port": port,
            "--threads": a.threads,
            "--max-batch-size": a.max_batch_size,
            "--batch-timeout": a.max_delay_ms / 1000,  # the same wait as sanet-serve's
            "--cache-dir": a.cache_dir / "baseline",
            "--weights": a.weights,
        }
        cmd = [sys.executable, "-m", "bench.e2e.baseline"]
        return cmd + [str(x) for k, v in flags.items() if v is not None for x in (k, v)]

    def _sanet_env(self) -> dict[str, str]:
        a = self.args
        env = {
            "SANET_MODELS": f"{a.arch}={a.weights}" if a.weights else a.arch,
            "SANET_THREADS": str(a.threads),
            "SANET_CACHE_DIR": str(a.cache_dir),
            "SANET_MAX_BATCH_SIZE": str(a.max_batch_size),
            "SANET_MAX_DELAY_MS": str(a.max_delay_ms),
            **self.config.env,
            **dict(map(setting, a.server_env)),
        }
        if env.get("SANET_PRECISION") == "int8":
            env.setdefault("SANET_CALIBRATION_DIR", str(calibration_dir(a.cache_dir)))
        return env

    def start(self) -> None:
        port = free_port()
        cmd, env, ready = self._command(port)
        self._stack = contextlib.ExitStack()
        t0 = time.perf_counter()
        self.proc = self._stack.enter_context(
            spawned_process(cmd, env, self.args.ready_timeout, port=port, ready_path=ready)
        )
        self.ready_s.append(round(time.perf_counter() - t0, 2))
        if not self.config.is_baseline:
            self.engine, self.report = served_engine(self.url)

    @property
    def url(self) -> str:
        assert self.proc is not None, "not started"
        return self.proc.url

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.popen.pid

    def stop(self) -> None:
        """Stop it; any process of its tree still alive afterwards is killed (by pid)."""
        if self._stack is None or self.proc is None:
            return
        pids = proctree.tree(self.pid)
        self._stack.close()
        self._stack = self.proc = None
        with contextlib.suppress(TimeoutError):  # its children exit just after it
            poll(lambda: not any(map(proctree.alive, pids)), 10, f"{self}'s processes")
        for pid in filter(proctree.alive, pids):
            log.warning("%s: process %d outlived its server; killing it", self, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def __str__(self) -> str:
        return self.config.label


def calibration_dir(cache_dir: Path) -> Path:
    """Generated calibration images, kept so a rerun finds its INT8 model cached."""
    from testing.training import write_images

    folder = cache_dir / "e2e-calibration"
    if not folder.is_dir():
        write_images(folder, 40, 4, seed=1)
    return folder


def served_engine(url: str) -> tuple[str, dict | None]:
    """The engine sanet-serve built (``/v1/models``: ``engine.backend``, e.g. openvino) and
    its whole report (auto's decision and timings)."""
    model = httpx.get(f"{url}/v1/models", timeout=10).raise_for_status().json()["models"][0]
    report = model.get("engine")
    return str((report or {}).get("backend") or model["backend"]), report
