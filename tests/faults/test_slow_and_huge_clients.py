"""Slow, silent, huge and hostile clients: answered or closed, within bounds."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx

from testing import rawhttp
from testing.app import ARCH, Running
from testing.images import image_bytes
from testing.waiting import poll

JPEG = {"Content-Type": "image/jpeg"}
MiB = 2**20


def test_slow_body_gets_408_at_its_deadline_and_leaves_nothing_in_flight(tree: Running) -> None:
    before = tree.metric("sanet_rejected_total", model=ARCH, reason="deadline")
    body = image_bytes(0)
    sock = rawhttp.connect(tree.url, timeout=20)
    head = {
        "Content-Type": "image/jpeg",
        "Content-Length": str(len(body)),
        "X-Request-Timeout-Ms": "500",
    }
    sock.sendall(rawhttp.head("POST", "/classify", head) + body[:100])  # then stalls
    answer = rawhttp.read_answer(sock)
    assert answer.status == 408
    assert answer.json()["error"]["code"] == "request_timeout"
    assert answer.headers["connection"] == "close"
    assert rawhttp.closed_by_peer(sock)
    poll(lambda: tree.metric("sanet_inflight_requests") == 0, 10, "no request in flight")
    tree.wait_slots(0)
    assert tree.metric("sanet_rejected_total", model=ARCH, reason="deadline") == before + 1


def test_silent_and_dribbling_connections_are_closed(serve: Callable[..., Any]) -> None:
    with serve(header_timeout_s=0.5) as running:
        silent = [rawhttp.connect(running.url, timeout=15) for _ in range(20)]
        dribble = rawhttp.connect(running.url, timeout=15)
        dribble.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line

        def dribbling_closed() -> bool:
            try:
                dribble.sendall(b"X")  # one byte of header at a time
                return dribble.recv(1, socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        poll(dribbling_closed, 15, "the dribbling connection to be closed", every=0.2)
        assert all(rawhttp.closed_by_peer(s) for s in silent)
        assert running.client.get("/healthz").status_code == 200  # the server still answers


def test_idle_keep_alive_connection_is_closed(serve: Callable[..., Any]) -> None:
    with serve(keep_alive_timeout_s=0.5) as running:
        sock = rawhttp.connect(running.url, timeout=15)
        sock.sendall(rawhttp.head("GET", "/healthz", {}))
        assert rawhttp.read_answer(sock).status == 200
        assert rawhttp.closed_by_peer(sock)


def test_connections_beyond_the_cap_get_503_json_when_none_is_idle(
    serve: Callable[..., Any],
) -> None:
    with serve(max_connections=4, workers=1) as running:
        busy = []  # each in the middle of a request: the server waits for its body
        for _ in range(4):
            sock = rawhttp.connect(running.url)
            sock.sendall(rawhttp.head("POST", "/classify", _declared(1000)))
            assert b"100 Continue" in sock.recv(1024)  # the request is being read
            busy.append(sock)
        extra = rawhttp.connect(running.url)
        answer = rawhttp.read_answer(extra)
        assert answer.status == 503
        assert answer.json()["error"]["code"] == "too_many_connections"
        assert "retry-after" in answer.headers
        for s in busy:
            s.close()


def test_idle_and_silent_floods_give_way_to_real_clients(serve: Callable[..., Any]) -> None:
    """Idle keep-alive connections and connections that never send a byte fill the cap;
    real requests are still served (the longest-idle connection makes room), and the silent
    ones are closed after the header timeout."""
    with serve(max_connections=32, header_timeout_s=1, keep_alive_timeout_s=60) as running:
        idle = []
        for _ in range(40):
            sock = rawhttp.connect(running.url, timeout=15)
            sock.sendall(rawhttp.head("GET", "/healthz", {}))
            if rawhttp.read_answer(sock).status == 200:
                idle.append(sock)
        silent = [rawhttp.connect(running.url, timeout=15) for _ in range(20)]
        for i in range(10):
            r = httpx.post(
                f"{running.url}/classify", content=image_bytes(i), headers=JPEG, timeout=15
            )
            assert r.status_code == 200, r.text
        poll(lambda: all(rawhttp.closed_by_peer(s) for s in silent), 15, "silent ones closed")
        for s in idle + silent:
            s.close()


def _declared(n: int) -> dict[str, str]:
    return {"Content-Type": "image/jpeg", "Content-Length": str(n), "Expect": "100-continue"}


def test_oversized_headers_get_431_json(tree: Running) -> None:
    sock = rawhttp.connect(tree.url)
    sock.sendall(rawhttp.head("GET", "/healthz", {"X-Big": "a" * (2 * MiB)}))
    answer = rawhttp.read_answer(sock)
    assert answer.status == 431
    assert answer.json()["error"]["code"] == "headers_too_large"
    assert tree.client.get("/healthz").status_code == 200


def test_oversized_body_413_reaches_a_client_without_expect_continue(
    serve: Callable[..., Any],
) -> None:
    with serve(max_body_bytes=10 * MiB) as running:
        # urllib sends all of it before reading; more than kernel buffers hold
        body = b"\xff\xd8" + bytes(12 * MiB)
        req = urllib.request.Request(
            f"{running.url}/classify", data=body, headers={"Content-Type": "image/jpeg"}
        )
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError("an oversized body was accepted")
        except urllib.error.HTTPError as err:
            assert err.code == 413
            assert err.headers["Connection"] == "close"
            assert b'"body_too_large"' in err.read()


def test_chunked_body_over_the_limit_stops_being_read(serve: Callable[..., Any]) -> None:
    limit, discard = 1 * MiB, 1 * MiB
    with serve(max_body_bytes=limit, max_discard_bytes=discard) as running:
        sock = rawhttp.connect(running.url, timeout=10)
        head = {"Content-Type": "image/jpeg", "Transfer-Encoding": "chunked"}
        sock.sendall(rawhttp.head("POST", "/classify", head))
        chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"\0" * 64 * 1024)
        sent = 0
        try:
            while sent < 48 * MiB:
                sock.sendall(chunk)
                sent += len(chunk)
        except ConnectionError:  # the server closed: what it took is bounded
            pass
        # Kernel buffers on both ends hold a few MiB that the server never read.
        assert sent < limit + discard + 24 * MiB, f"the server read {sent} bytes"
