"""Shedding with the inference worker held inside a batch: queue full, deadline, disconnect."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.api.conftest import ARCH, Gate, Running, gate, image_bytes

JPEG = {"Content-Type": "image/jpeg"}


@pytest.fixture(scope="module")
def held(serve: Callable[..., Any]) -> Iterator[tuple[Running, Gate]]:
    with serve(max_queue=4, max_images_per_request=4, max_batch_size=2) as running:
        yield running, gate(running)


def _post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post("/classify", content=image_bytes(0), headers={**JPEG, **(headers or {})})


def _wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def _block_worker(running: Running, g: Gate, pool: ThreadPoolExecutor) -> Future[httpx.Response]:
    g.hold()
    first = pool.submit(_post, running.url)
    assert g.entered.wait(10)
    return first


def test_queue_full_is_503_with_retry_after(held: tuple[Running, Gate]) -> None:
    running, g = held
    batcher = running.life.batchers[ARCH]
    before = running.metric("sanet_rejected_total", model=ARCH, reason="queue_full")
    with ThreadPoolExecutor(8) as pool:
        first = _block_worker(running, g, pool)
        queued = [pool.submit(_post, running.url) for _ in range(4)]
        _wait_for(lambda: batcher.depth == 4)
        r = _post(running.url)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "queue_full"
        assert int(r.headers["Retry-After"]) >= 1
        g.open.set()
        assert first.result().status_code == 200
        assert [f.result().status_code for f in queued] == [200] * 4
    after = running.metric("sanet_rejected_total", model=ARCH, reason="queue_full")
    assert after == before + 1


def test_deadline_passed_in_queue_is_504_and_never_computed(held: tuple[Running, Gate]) -> None:
    running, g = held
    with ThreadPoolExecutor(4) as pool:
        first = _block_worker(running, g, pool)
        seen = len(g.batches)
        t0 = time.monotonic()
        r = _post(running.url, {"X-Request-Timeout-Ms": "200"})
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert time.monotonic() - t0 < 5  # answered while the worker is still busy
        g.open.set()
        assert first.result().status_code == 200
    _wait_for(lambda: running.life.batchers[ARCH].depth == 0)
    assert len(g.batches) == seen  # the expired request never reached the model
    assert running.metric("sanet_rejected_total", model=ARCH, reason="deadline") >= 1


def test_disconnected_client_is_dropped_before_the_model(held: tuple[Running, Gate]) -> None:
    running, g = held
    batcher = running.life.batchers[ARCH]
    before = running.metric("sanet_rejected_total", model=ARCH, reason="disconnected")
    with ThreadPoolExecutor(4) as pool:
        first = _block_worker(running, g, pool)
        seen = len(g.batches)
        body = image_bytes(5)
        sock = socket.create_connection(("127.0.0.1", running.port))
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        _wait_for(lambda: batcher.depth == 1)
        sock.close()
        _wait_for(lambda: batcher.depth == 0)
        g.open.set()
        assert first.result().status_code == 200
    assert len(g.batches) == seen
    _wait_for(
        lambda: (
            running.metric("sanet_rejected_total", model=ARCH, reason="disconnected") == before + 1
        )
    )
