"""SIGTERM while 16 clients keep sending, each request on a new connection, for 12 s.

Once the admitted work is done the front ends stop taking connections: what waits in the
accept backlog is answered 503 with ``Connection: close``, and later connection attempts are
refused. So every connection a client opened gets an answer (200 or 503): no reset, and no
connection closed without a response. A refused connect is fine; so is the tree's exit 0.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

from testing import rawhttp
from testing.images import image_bytes
from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

CLIENTS, AFTER_SIGNAL_S = 16, 12.0


class Tally:
    """Every client's outcomes, and when the clients stop (set at the signal)."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop_at = float("inf")

    def add(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1


def _one_request(url: str, request: bytes) -> str:
    """One request on a new connection: its status, ``refused``, or what went wrong."""
    try:
        sock = rawhttp.connect(url, timeout=30)
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"connect-failed:{type(exc).__name__}"
    try:
        sock.sendall(request)
        return str(rawhttp.read_answer(sock).status)
    except OSError as exc:  # a reset, a broken pipe, a close without an answer, a timeout
        return f"no-answer:{type(exc).__name__}"
    finally:
        sock.close()


def _client(url: str, tally: Tally) -> None:
    body = image_bytes(1)
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(len(body))}
    request = rawhttp.head("POST", "/classify", headers) + body
    while time.monotonic() < tally.stop_at:
        outcome = _one_request(url, request)
        tally.add(outcome)
        if outcome == "refused":
            time.sleep(0.02)  # the tree is gone: keep trying, without spinning a core


def test_sigterm_under_new_connections_resets_none(tmp_path: Path, checkpoint: Path) -> None:
    cmd = [
        *sanet_serve_command(), "--models", f"sanet_tiny={checkpoint}", "--backend",
        "torchscript", "--device", "cpu", "--max-batch-size", "4", "--workers", "2",
        "--drain-timeout-s", "10", "--timeout-ms", "60000",
    ]  # fmt: skip
    proc = Spawned(cmd, tmp_path / "server.log")
    tally = Tally()
    threads = [threading.Thread(target=_client, args=(proc.url, tally)) for _ in range(CLIENTS)]
    try:
        proc.wait_ready()
        for t in threads:
            t.start()
        poll(lambda: tally.outcomes["200"] >= 4 * CLIENTS, 60, "traffic to flow")
        proc.terminate()
        tally.stop_at = time.monotonic() + AFTER_SIGNAL_S
        assert proc.wait(AFTER_SIGNAL_S + 30) == 0, proc.tail()
    finally:
        tally.stop_at = 0.0
        for t in threads:
            t.join(60)
        proc.stop(grace=5)
    outcomes = dict(tally.outcomes)
    assert set(outcomes) <= {"200", "503", "refused"}, outcomes
    assert outcomes.get("503") and outcomes.get("refused"), outcomes
