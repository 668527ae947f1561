"""Process and polling helpers for the live test: a real service and a real Prometheus.

Every wait is a bounded poll; every process started here is stopped by `stop()`.
"""

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def poll(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.25) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a background process whose stdout and stderr go to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM `proc`, wait up to `grace` seconds, then SIGKILL it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def status_of(url: str) -> int | None:
    """HTTP status of GET `url`, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def service_command() -> list[str]:
    """How to start the service: the console script next to this Python, else `-m service`."""
    script = Path(sys.executable).parent / "sanet-serve"
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


def tail(log: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, for failure messages."""
    if not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class PromClient:
    """Minimal client of the Prometheus HTTP API (instant queries and alerts)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=5)

    def query(self, expr: str) -> list[dict]:
        """Result vector of an instant query; raises on a query error."""
        response = self.http.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def alerts(self) -> list[dict]:
        """Alerts Prometheus currently holds (pending or firing)."""
        return self.http.get("/api/v1/alerts").json()["data"]["alerts"]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()
