"""Shedding with the inference worker held inside a batch: queue full, deadline, disconnect,
and the X-Request-Timeout-Ms header setting each request's deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from testing.app import ARCH, Gate, Running, gate
from testing.images import image_bytes
from testing.waiting import poll

JPEG = {"Content-Type": "image/jpeg"}
PATIENT = {"X-Request-Timeout-Ms": "60000"}


@pytest.fixture(scope="module")
def held(serve: Callable[..., Any]) -> Iterator[tuple[Running, Gate]]:
    with serve(max_queue=4, max_images_per_request=4, max_batch_size=2) as running:
        yield running, gate(running)


def _post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.post("/classify", content=image_bytes(0), headers={**JPEG, **(headers or {})})


def _depth(running: Running) -> int:
    depth: int = running.served(ARCH).depth
    return depth


def _wait_depth(running: Running, n: int) -> None:
    poll(lambda: _depth(running) == n, 10, f"{n} images queued")


def _block_worker(
    running: Running, g: Gate, pool: ThreadPoolExecutor, headers: dict[str, str] | None = None
) -> Future[httpx.Response]:
    g.hold()
    first = pool.submit(_post, running.url, headers)
    assert g.entered.wait(10)
    return first


def test_queue_full_is_503_with_retry_after(held: tuple[Running, Gate]) -> None:
    running, g = held
    before = running.metric("sanet_rejected_total", model=ARCH, reason="queue_full")
    with ThreadPoolExecutor(8) as pool:
        first = _block_worker(running, g, pool)
        queued = [pool.submit(_post, running.url) for _ in range(4)]
        _wait_depth(running, 4)
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
    assert running.settings.timeout_ms >= 10_000  # so a 504 within 5 s is the header's doing
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
    _wait_depth(running, 0)
    assert len(g.batches) == seen  # the expired request never reached the model
    assert running.metric("sanet_rejected_total", model=ARCH, reason="deadline") >= 1


def test_timeout_header_outlives_a_short_default(serve: Callable[..., Any]) -> None:
    """Same queue, same wait: the request without the header expires at the 300 ms default,
    the one whose header allows 60 s is still waiting, and is served once the worker frees."""
    with serve(timeout_ms=300, max_batch_size=2) as running, ThreadPoolExecutor(4) as pool:
        g = gate(running)
        first = _block_worker(running, g, pool, PATIENT)
        patient = pool.submit(_post, running.url, PATIENT)
        _wait_depth(running, 1)
        r = _post(running.url)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert not patient.done() and _depth(running) == 1
        g.open.set()
        assert first.result().status_code == 200
        assert patient.result().status_code == 200


def test_disconnected_client_is_dropped_before_the_model(held: tuple[Running, Gate]) -> None:
    running, g = held
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
        _wait_depth(running, 1)
        sock.close()
        _wait_depth(running, 0)
        g.open.set()
        assert first.result().status_code == 200
    assert len(g.batches) == seen
    poll(
        lambda: (
            running.metric("sanet_rejected_total", model=ARCH, reason="disconnected") == before + 1
        ),
        10,
        "the disconnect to be counted",
    )
