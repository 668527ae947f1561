"""POST /classify with the three body shapes, /v1/models, health endpoints."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from model.fused import load_fused_sa
from testing.app import ARCH, Running
from testing.images import image_bytes
from testing.paths import SAMPLES


def _probs(answer: dict[str, Any]) -> list[float]:
    return [p["probability"] for p in answer["predictions"]]


def test_raw_jpeg_body(api: Running) -> None:
    r = api.client.post(
        "/classify",
        content=(SAMPLES / "coffee.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == ARCH
    assert len(body["results"]) == 1
    preds = body["results"][0]["predictions"]
    assert len(preds) == 5
    assert all(set(p) == {"class_index", "label", "probability"} for p in preds)
    assert _probs(body["results"][0]) == sorted(_probs(body["results"][0]), reverse=True)
    assert set(body["timing_ms"]) >= {"preprocess", "queue", "inference", "total"}


@pytest.mark.parametrize(
    "fmt,ctype",
    [("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")],
)
def test_raw_formats(api: Running, fmt: str, ctype: str) -> None:
    r = api.client.post(
        "/classify?top_k=3", content=image_bytes(3, fmt), headers={"Content-Type": ctype}
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"][0]["predictions"]) == 3


def test_multipart_answers_in_order(api: Running) -> None:
    imgs = [image_bytes(i) for i in range(3)]
    singles = [
        api.client.post(
            "/classify?top_k=1000", content=b, headers={"Content-Type": "image/jpeg"}
        ).json()["results"][0]
        for b in imgs
    ]
    files = [("file", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(imgs)]
    r = api.client.post("/classify?top_k=1000", files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3
    for got, want in zip(results, singles, strict=True):
        assert got["predictions"][0]["class_index"] == want["predictions"][0]["class_index"]
        assert _probs(got) == pytest.approx(_probs(want), abs=1e-5)


def test_base64_json(api: Running) -> None:
    data = [base64.b64encode(image_bytes(i, "PNG")).decode() for i in range(2)]
    data[1] = "data:image/png;base64," + data[1]
    r = api.client.post("/classify?top_k=2", json={"images": data})
    assert r.status_code == 200, r.text
    assert [len(x["predictions"]) for x in r.json()["results"]] == [2, 2]


def test_kserve_v1_instances_as_base64_and_b64_objects(api: Running) -> None:
    data = [base64.b64encode(image_bytes(i, "PNG")).decode() for i in range(2)]
    want = api.client.post("/classify?top_k=1000", json={"images": data}).json()["results"]
    r = api.client.post("/classify?top_k=1000", json={"instances": [data[0], {"b64": data[1]}]})
    assert r.status_code == 200, r.text
    for got, single in zip(r.json()["results"], want, strict=True):
        assert _probs(got) == pytest.approx(_probs(single), abs=1e-5)


def test_top_k_1000_is_a_full_distribution(api: Running) -> None:
    r = api.client.post(
        "/classify",
        params={"top_k": 1000, "model": ARCH},
        content=image_bytes(1),
        headers={"Content-Type": "image/jpeg"},
    )
    preds = r.json()["results"][0]["predictions"]
    assert sorted(p["class_index"] for p in preds) == list(range(1000))
    assert sum(p["probability"] for p in preds) == pytest.approx(1.0, abs=1e-4)


def test_models_endpoint_reports_the_checkpoint(api: Running, checkpoint: Path) -> None:
    r = api.client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == ARCH
    (info,) = body["models"]
    assert info["arch"] == ARCH and info["default"] is True
    assert info["weights"]["source"] == "checkpoint"
    assert info["weights"]["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert info["backend"] == "torchscript" and info["device"] == "cpu"
    assert info["fused_sa"] is load_fused_sa()  # the kernel serves when it builds here
    assert info["precision"] == "fp32"
    assert info["parameters"] > 0 and info["num_classes"] == 1000
    assert info["batching"] == {"max_batch_size": 4, "max_delay_ms": 2.0, "max_queue": 64}
    assert info["input_size"] == [3, 224, 224]


def test_health_and_readiness(api: Running) -> None:
    assert api.client.get("/healthz").json() == {"status": "alive"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
