"""Shedding with the engine held (stopped) while requests wait: slots full, deadline,
disconnect, and the X-Request-Timeout-Ms header setting each request's deadline."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from testing.app import ARCH, Running
from testing.images import image_bytes
from testing.waiting import poll

JPEG = {"Content-Type": "image/jpeg"}
PATIENT = {"X-Request-Timeout-Ms": "60000"}
AFTER = 4  # requests that follow an expired one through the engine


@pytest.fixture(scope="module")
def held(serve: Callable[..., Any]) -> Iterator[Running]:
    # 6 slots: SANET_MAX_QUEUE (4) plus one batch (2)
    with serve(max_queue=4, max_images_per_request=4, max_batch_size=2) as running:
        yield running


def _post(
    url: str, headers: dict[str, str] | None = None, within: float = 30, why: str = "answered"
) -> httpx.Response:
    """One image posted on a new connection; answered within ``within`` s or the test fails."""
    with httpx.Client(base_url=url, timeout=within) as client:
        try:
            return client.post(
                "/classify", content=image_bytes(0), headers={**JPEG, **(headers or {})}
            )
        except httpx.TimeoutException:
            pytest.fail(f"no answer within {within} s: expected {why}")


def _computed(running: Running) -> float:
    return running.metric("sanet_images_total", model=ARCH)


def test_full_slots_are_503_with_retry_after_at_once(held: Running) -> None:
    running = held
    before = running.metric("sanet_rejected_total", model=ARCH, reason="queue_full")
    with ThreadPoolExecutor(8) as pool, running.engine_held() as hold:
        admitted = [pool.submit(_post, running.url) for _ in range(6)]
        running.wait_slots(6)
        r = _post(running.url, within=5, why="a refusal before any work, not after a wait")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "queue_full"
        assert int(r.headers["Retry-After"]) >= 1
        hold.release()
        assert [f.result().status_code for f in admitted] == [200] * 6
    after = running.metric("sanet_rejected_total", model=ARCH, reason="queue_full")
    assert after == before + 1
    running.wait_slots(0)


def test_deadline_passed_in_queue_is_504_and_never_computed(held: Running) -> None:
    running = held
    assert running.settings.timeout_ms >= 10_000  # so a 504 within 5 s is the header's doing
    seen = _computed(running)
    shed = running.metric("sanet_rejected_total", model=ARCH, reason="deadline")
    with ThreadPoolExecutor(4) as pool, running.engine_held() as hold:
        first = pool.submit(_post, running.url, PATIENT)
        running.wait_slots(1)
        r = _post(running.url, {"X-Request-Timeout-Ms": "200"}, 10, "a 504 with the engine stopped")
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "deadline_exceeded"
        hold.release()
        assert first.result().status_code == 200
    running.wait_slots(0)
    poll(lambda: _computed(running) == seen + 1, 10, "the patient request computed")
    # Requests sent after the release, on new connections (either front end), and computed:
    # the engine has read everything sent before them, the expired request included.
    with ThreadPoolExecutor(AFTER) as pool:
        assert [r.status_code for r in pool.map(lambda _: _post(running.url), range(AFTER))] == [
            200
        ] * AFTER
    assert _computed(running) == seen + 1 + AFTER  # the expired request never computed
    assert running.metric("sanet_rejected_total", model=ARCH, reason="deadline") == shed + 1


def test_timeout_header_outlives_a_short_default(serve: Callable[..., Any]) -> None:
    """Same wait: the request without the header expires at the 300 ms default, the one
    whose header allows 60 s is still waiting, and is served once the engine runs again."""
    with (
        serve(timeout_ms=300, max_batch_size=2) as running,
        ThreadPoolExecutor(4) as pool,
        running.engine_held() as hold,
    ):
        patient = pool.submit(_post, running.url, PATIENT)
        running.wait_slots(1)
        r = _post(running.url)
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert not patient.done()
        hold.release()
        assert patient.result().status_code == 200


def test_disconnected_client_is_dropped_before_the_model(held: Running) -> None:
    running = held
    before = running.metric("sanet_rejected_total", model=ARCH, reason="disconnected")
    seen = _computed(running)
    with running.engine_held():
        body = image_bytes(5)
        sock = socket.create_connection(("127.0.0.1", running.port))
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        running.wait_slots(1)
        sock.close()
        running.wait_slots(0)  # its slot is free again while the engine is still stopped
    assert _post(running.url).status_code == 200
    assert _computed(running) == seen + 1  # the dropped request never reached the model
    poll(
        lambda: (
            running.metric("sanet_rejected_total", model=ARCH, reason="disconnected") == before + 1
        ),
        10,
        "the disconnect to be counted",
    )
