"""POST /explain and /v1/models/{name}:explain on the real app: bodies, PNG, errors, its lane."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from testing.app import ARCH, Running
from testing.images import image_bytes
from testing.paths import SAMPLES

JPEG = {"Content-Type": "image/jpeg"}


def _check_result(result: dict[str, Any], top_k: int = 5) -> np.ndarray:
    assert len(result["predictions"]) == top_k
    heat = np.asarray(result["map"], dtype=np.float64)
    assert heat.shape == (7, 7)
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    png = Image.open(io.BytesIO(base64.b64decode(result["overlay_png"])))
    assert png.format == "PNG" and png.size == (224, 224)
    return heat


def test_raw_body_gradcam_explains_the_top1(api: Running) -> None:
    r = api.client.post("/explain", content=(SAMPLES / "coffee.jpg").read_bytes(), headers=JPEG)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == ARCH and body["method"] == "gradcam"
    (result,) = body["results"]
    _check_result(result)
    assert result["target"] == result["predictions"][0]["class_index"]
    classified = api.client.post(
        "/classify", content=(SAMPLES / "coffee.jpg").read_bytes(), headers=JPEG
    ).json()["results"][0]["predictions"]
    assert [p["class_index"] for p in classified] == [
        p["class_index"] for p in result["predictions"]
    ]


def test_multipart_sa_with_a_target(api: Running) -> None:
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(2)]
    r = api.client.post("/explain?method=sa&target=1&top_k=2", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "sa" and len(body["results"]) == 2
    for result in body["results"]:
        _check_result(result, top_k=2)
        assert result["target"] == 1


def test_base64_json_and_the_v1_verb(api: Running) -> None:
    images = [base64.b64encode(image_bytes(i, "PNG")).decode() for i in range(2)]
    r = api.client.post(f"/v1/models/{ARCH}:explain", json={"images": images})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2
    for result in r.json()["results"]:
        _check_result(result)


def test_the_v1_verb_takes_kserve_v1_instances(api: Running) -> None:
    image = base64.b64encode(image_bytes(1, "PNG")).decode()
    r = api.client.post(f"/v1/models/{ARCH}:explain", json={"instances": [image, {"b64": image}]})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert np.allclose(_check_result(first), _check_result(second))


@pytest.mark.parametrize(
    "instances,code,named",
    [
        ({"b64": "AAAA"}, "bad_request", "instances is not a list"),
        ([{"data": "AAAA"}], "bad_request", "instances[0] is an object"),
        (["AAAA", "not base64!"], "invalid_base64", "instances[1] is not valid base64"),
    ],
)
def test_bad_instances_are_400_naming_the_field(
    api: Running, instances: object, code: str, named: str
) -> None:
    r = api.client.post(f"/v1/models/{ARCH}:explain", json={"instances": instances})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code and named in error["message"]


def test_accept_png_gives_the_overlay_itself(api: Running) -> None:
    r = api.client.post("/explain", content=image_bytes(3), headers={**JPEG, "Accept": "image/png"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    png = Image.open(io.BytesIO(r.content))
    assert png.size == (224, 224)
    assert np.asarray(png).std() > 0


@pytest.mark.parametrize(
    "query,code",
    [
        ("target=100000", "invalid_parameter"),
        ("target=-1", "invalid_parameter"),
        ("method=lime", "invalid_parameter"),
        ("top_k=0", "invalid_parameter"),
    ],
)
def test_bad_parameters_are_400(api: Running, query: str, code: str) -> None:
    r = api.client.post(f"/explain?{query}", content=image_bytes(0), headers=JPEG)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_bad_bodies_get_classifys_answers(api: Running) -> None:
    cases = [
        (b"not an image", JPEG, 400, "invalid_image"),
        (b"{}", {"Content-Type": "application/json"}, 400, None),
        (image_bytes(0), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ]
    for content, headers, status, code in cases:
        r = api.client.post("/explain", content=content, headers=headers)
        assert r.status_code == status, r.text
        if code:
            assert r.json()["error"]["code"] == code
    r = api.client.post("/v1/models/nope:explain", content=image_bytes(0), headers=JPEG)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def narrow(serve: Callable[..., Any]) -> Iterator[Running]:
    with serve(explain_queue=1, explain="eager") as running:
        yield running


def test_the_explain_lane_refuses_beyond_its_bound(narrow: Running) -> None:
    files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(2)]
    r = narrow.client.post("/explain", files=files)
    assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full", r.text
    assert "Retry-After" in r.headers
    assert narrow.client.post("/classify", files=files).status_code == 200


def test_a_held_engine_refuses_the_excess_explanations_and_still_classifies(
    narrow: Running,
) -> None:
    def post(path: str, i: int) -> httpx.Response:
        with httpx.Client(base_url=narrow.url, timeout=60) as client:
            return client.post(path, content=image_bytes(i), headers=JPEG)

    with ThreadPoolExecutor(4) as pool, narrow.engine_held() as hold:
        classify = pool.submit(post, "/classify", 0)
        narrow.wait_slots(1)
        explains = [pool.submit(post, "/explain", i) for i in range(3)]
        narrow.wait_slots(4)
        hold.release()
        statuses = sorted(f.result().status_code for f in explains)
        assert classify.result().status_code == 200
    assert 200 in statuses and 503 in statuses, statuses
    assert narrow.metric("sanet_requests_total", model=ARCH, status="503", protocol="explain") >= 1
