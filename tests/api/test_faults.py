"""Failures of the process tree: draining, a front end killed, the engine killed."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from testing.app import ARCH
from testing.images import image_bytes
from testing.waiting import poll

JPEG = {"Content-Type": "image/jpeg"}


def _post(url: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post("/classify", content=image_bytes(0), headers=JPEG)


def test_draining_refuses_new_requests_and_finishes_admitted_ones(
    serve: Callable[..., Any],
) -> None:
    with serve() as running, ThreadPoolExecutor(2) as pool, running.engine_held() as hold:
        admitted = pool.submit(_post, running.url)
        running.wait_slots(1)
        running.terminate()
        poll(lambda: running.client.get("/readyz").status_code == 503, 10, "readiness off")
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "draining"
        assert "Retry-After" in r.headers and r.headers["connection"] == "close"
        assert running.client.get("/healthz").status_code == 200
        assert running.metric("sanet_rejected_total", model=ARCH, reason="draining") == 1
        hold.release()
        assert admitted.result().status_code == 200
        assert running.wait(30) == 0, running.tail()


def test_a_killed_front_end_is_replaced_and_its_slots_come_back(
    serve: Callable[..., Any],
) -> None:
    stop = threading.Event()
    statuses: list[int] = []

    def load(url: str) -> None:
        while not stop.is_set():
            try:
                statuses.append(_post(url).status_code)
            except httpx.TransportError:
                statuses.append(-1)  # a connection of the killed process

    with serve() as running, ThreadPoolExecutor(4) as pool:
        loops = [pool.submit(load, running.url) for _ in range(4)]
        try:
            poll(lambda: statuses.count(200) >= 8, 60, "traffic to flow")
            victim = running.process("sanet-front-0")
            with running.engine_held():  # requests hold slots when it dies (of either front end)
                poll(lambda: running.metric("sanet_slots_used") >= 2, 30, "requests admitted")
                os.kill(victim, signal.SIGKILL)
            poll(lambda: _replaced(running, victim), 30, "a new front end 0")
            served = len(statuses)
            poll(lambda: statuses[served:].count(200) >= 8, 60, "traffic after the kill")
        finally:
            stop.set()
        for f in loops:
            f.result()
        running.wait_slots(0)  # nothing leaked: the dead one's slots were reclaimed
        assert set(statuses) <= {200, 503, -1}, sorted(set(statuses))
        assert running.client.get("/readyz").status_code == 200


def _replaced(running: Any, victim: int) -> bool:
    try:
        return running.process("sanet-front-0") != victim
    except LookupError:  # between the old one's death and the new one's start
        return False


def test_a_killed_engine_turns_readiness_off_and_the_tree_exits_non_zero(
    serve: Callable[..., Any],
) -> None:
    with serve(drain_timeout_s=2) as running:
        assert _post(running.url).status_code == 200
        # the supervisor stopped, so the front ends stay up and can be asked
        os.kill(running.popen.pid, signal.SIGSTOP)
        try:
            os.kill(running.process("sanet-engine"), signal.SIGKILL)
            poll(lambda: running.client.get("/readyz").status_code == 503, 10, "readiness off")
            r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
            assert r.status_code == 503, r.text
        finally:
            os.kill(running.popen.pid, signal.SIGCONT)
        assert running.wait(30) == 1, running.tail()
        assert "the engine exited" in running.log
