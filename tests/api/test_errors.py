"""Bad client input: the documented 4xx with a JSON error, never a 500."""

from __future__ import annotations

import base64
import io
import re
import select
import socket
import time

import pytest
from PIL import Image

from testing.app import Running
from testing.images import image_bytes

JPEG = {"Content-Type": "image/jpeg"}
JSON = {"Content-Type": "application/json"}


def _error(r: object, status: int, code: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"]}}  # type: ignore[attr-defined]


def _big_png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, "PNG")  # a few KB on disk, w*h pixels in the header
    return buf.getvalue()


@pytest.mark.parametrize(
    "content,headers,status,code",
    [
        (b"", JPEG, 400, "invalid_image"),
        (b"this is not an image", JPEG, 400, "invalid_image"),
        (image_bytes(0)[:300], JPEG, 400, "invalid_image"),  # truncated
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, {"Content-Type": "image/png"}, 400, "invalid_image"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        (b"hello", {}, 415, "unsupported_media_type"),
        (b"{not json", JSON, 400, "bad_request"),
        (b'{"pictures": []}', JSON, 400, "bad_request"),
        (b'{"images": []}', JSON, 400, "no_images"),
        (b'{"images": ["@@@not base64@@@"]}', JSON, 400, "invalid_base64"),
        (b'{"images": [42]}', JSON, 400, "invalid_base64"),
        (b'{"instances": "abc"}', JSON, 400, "bad_request"),
        (b'{"instances": [{"x": "A"}]}', JSON, 400, "bad_request"),
        (b'{"instances": ["@@"]}', JSON, 400, "invalid_base64"),
        (b'{"instances": [{"b64": 1}]}', JSON, 400, "invalid_base64"),
        (b'{"images": [], "instances": []}', JSON, 400, "bad_request"),
        (b'{"instances": []}', JSON, 400, "no_images"),
        (
            b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
            {"Content-Type": "multipart/form-data; boundary=xyz"},
            400,
            "malformed_multipart",
        ),
        (b"garbage", {"Content-Type": "multipart/form-data"}, 400, "malformed_multipart"),
        (b"--xyz--\r\n", {"Content-Type": "multipart/form-data; boundary=xyz"}, 400, "no_images"),
        (_big_png(2500, 2000), {"Content-Type": "image/png"}, 413, "image_too_large"),
    ],
)
def test_bad_bodies(
    api: Running, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    _error(api.client.post("/classify", content=content, headers=headers), status, code)


@pytest.mark.parametrize(
    "instances,code,named",
    [
        ("AAAA", "bad_request", "instances is not a list"),
        (["AAAA", {"image": "AAAA"}], "bad_request", "instances[1] is an object"),
        ([{"b64": "AAAA"}, {"b64": "@@@"}], "invalid_base64", "instances[1].b64 is not valid"),
        (["AAAA", "AAAA", 3], "invalid_base64", "instances[2] is not a base64 string"),
    ],
)
def test_bad_instances_name_the_field_and_index(
    api: Running, instances: object, code: str, named: str
) -> None:
    r = api.client.post("/classify", json={"instances": instances})
    _error(r, 400, code)
    assert named in r.json()["error"]["message"]


def test_base64_of_a_non_image(api: Running) -> None:
    r = api.client.post("/classify", json={"images": [base64.b64encode(b"nope").decode()]})
    _error(r, 400, "invalid_image")


@pytest.mark.parametrize("query", ["top_k=0", "top_k=1001", "top_k=abc", "top_k=", "top_k=2.5"])
def test_bad_top_k(api: Running, query: str) -> None:
    r = api.client.post(f"/classify?{query}", content=image_bytes(0), headers=JPEG)
    _error(r, 400, "invalid_parameter")


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_bad_timeout_header(api: Running, value: str) -> None:
    r = api.client.post(
        "/classify", content=image_bytes(0), headers={**JPEG, "X-Request-Timeout-Ms": value}
    )
    _error(r, 400, "invalid_parameter")


def test_unknown_model(api: Running) -> None:
    r = api.client.post("/classify?model=resnet9000", content=image_bytes(0), headers=JPEG)
    _error(r, 404, "model_not_found")


def test_too_many_images(api: Running) -> None:
    n = api.settings.max_images_per_request + 1
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(n)]
    _error(api.client.post("/classify", files=files), 413, "too_many_images")
    data = [base64.b64encode(image_bytes(0)).decode()] * n
    _error(api.client.post("/classify", json={"images": data}), 413, "too_many_images")


def test_body_over_limit_with_content_length(api: Running) -> None:
    big = b"\0" * (api.settings.max_body_bytes + 1)
    _error(api.client.post("/classify", content=big, headers=JPEG), 413, "body_too_large")


def test_unknown_path_and_method(api: Running) -> None:
    _error(api.client.get("/nope"), 404, "not_found")
    wrong_method = api.client.get("/classify")
    _error(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"


def _send_until_answered(port: int, head: bytes, chunk: bytes, total: int) -> tuple[bytes, int]:
    """Stream up to ``total`` bytes of body; stop as soon as the server answers."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        answer = sock.recv(65536)
        while b"\r\n\r\n" not in answer or len(answer) < _answer_length(answer):
            more = sock.recv(65536)  # the head and the body may come in separate segments
            if not more:
                break
            answer += more
    return answer, sent


def _answer_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return len(head) + 4 + (int(length.group(1)) if length else 0)


def test_a_1gb_chunked_upload_is_refused_without_buffering_it(api: Running) -> None:
    gig = 2**30
    piece = b"\xff" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = (
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    t0 = time.monotonic()
    answer, sent = _send_until_answered(api.port, head, chunk, gig)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer
    assert sent < 64 * api.settings.max_body_bytes  # stopped long before 1 GB
    assert time.monotonic() - t0 < 30


def test_a_declared_1gb_body_is_refused_before_reading(api: Running) -> None:
    head = (
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: 1073741824\r\n\r\n"
    )
    answer, sent = _send_until_answered(api.port, head, b"\0" * 65536, 2**30)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 * api.settings.max_body_bytes
