"""SIGTERM under 16 clients and a stalled upload.

The drain waits for admitted work only: the stalled upload is answered 503 and closed, so
the process exits long before the drain timeout. Every request a client sends gets an answer,
200 or 503 (docs/operations.md): a reset, a close without a response (a FIN) and a refused
connection are all failures.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx

from testing import rawhttp
from testing.images import image_bytes
from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

CLIENTS = 16


def _client_loop(url: str, outcomes: Counter[str], lock: threading.Lock) -> None:
    headers = {"Content-Type": "image/jpeg"}
    with httpx.Client(base_url=url, timeout=60) as client:
        while True:
            try:
                status = str(
                    client.post("/classify", content=image_bytes(1), headers=headers).status_code
                )
            except httpx.ConnectError as exc:  # a new connection once the listener closed
                status = "refused" if "refused" in str(exc) else f"no answer: {exc}"
            except httpx.TransportError as exc:  # no answer: reset, or closed (FIN) unanswered
                status = f"no answer: {type(exc).__name__}: {exc}"
            with lock:
                outcomes[status] += 1
            if status != "200":
                return


def test_sigterm_under_load_exits_when_admitted_work_ends(tmp_path: Path, checkpoint: Path) -> None:
    cmd = [
        *sanet_serve_command(), "--models", f"sanet_tiny={checkpoint}", "--backend",
        "torchscript", "--device", "cpu", "--max-batch-size", "4",
        "--drain-timeout-s", "120", "--timeout-ms", "300000",
    ]  # fmt: skip
    proc = Spawned(cmd, tmp_path / "server.log")
    try:
        proc.wait_ready()
        stalled = rawhttp.connect(proc.url, timeout=60)
        stalled.sendall(
            rawhttp.head(
                "POST", "/classify", {"Content-Type": "image/jpeg", "Content-Length": "5000"}
            )
            + b"\xff\xd8"
        )  # and nothing more: a slow upload, admitted, reading its body
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        threads = [
            threading.Thread(target=_client_loop, args=(proc.url, outcomes, lock))
            for _ in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        poll(lambda: outcomes["200"] >= 2 * CLIENTS, 60, "traffic to flow")
        proc.terminate()
        answer = rawhttp.read_answer(stalled)
        assert answer.status == 503 and answer.json()["error"]["code"] == "draining"
        assert proc.wait(30) == 0, proc.tail()  # not the 120 s drain timeout
        for t in threads:
            t.join(30)
        # every request sent got 200 or 503; a connection attempt after the listener closed is
        # refused (docs/operations.md), never reset or closed without an answer
        assert set(outcomes) <= {"200", "503", "refused"}, dict(outcomes)
    finally:
        proc.stop(grace=5)
