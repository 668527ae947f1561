"""/metrics after known traffic: exactly the names of docs/operations.md "Metrics", and the
counts add up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from testing.app import ARCH
from testing.images import image_bytes

JPEG = {"Content-Type": "image/jpeg"}
METRIC_NAMES = {
    "sanet_requests_total",
    "sanet_request_duration_seconds",
    "sanet_queue_wait_seconds",
    "sanet_preprocess_seconds",
    "sanet_inference_seconds",
    "sanet_batch_size",
    "sanet_images_total",
    "sanet_queue_depth",
    "sanet_inflight_requests",
    "sanet_rejected_total",
    "sanet_model_info",
    "sanet_queue_saturation",
    "sanet_inference_busy_seconds_total",
    "sanet_slots_used",
    "sanet_open_connections",
    "sanet_slots_total",
}


def test_counts_after_known_traffic(serve: Callable[..., Any]) -> None:
    with serve() as running:
        c = running.client
        for i in range(3):
            assert c.post("/classify", content=image_bytes(i), headers=JPEG).status_code == 200
        files = [("file", (f"{i}.jpg", image_bytes(i), "image/jpeg")) for i in range(5)]
        assert c.post("/classify", files=files).status_code == 200
        assert c.post("/classify", content=b"junk", headers=JPEG).status_code == 400
        assert c.post("/classify?model=nope", content=b"x", headers=JPEG).status_code == 404
        r = c.post(
            "/classify", content=image_bytes(0), headers={**JPEG, "X-Request-Timeout-Ms": "1"}
        )
        assert r.status_code == 504
        _counted(running.metric)
        text = c.get("/metrics").text
        families = set(re.findall(r"^# TYPE (sanet_\w+) ", text, re.M))
        assert {f.removesuffix("_total") for f in families} == {
            n.removesuffix("_total") for n in METRIC_NAMES
        }
        for name in METRIC_NAMES:
            assert re.search(rf"^{name}(_bucket|_count|_sum)?[{{ ]", text, re.M), name
        assert "process_cpu_seconds_total" in text


def _counted(m: Callable[..., float]) -> None:
    """What the known traffic of ``test_counts_after_known_traffic`` must have counted."""
    assert m("sanet_requests_total", model=ARCH, status="200") == 4
    assert m("sanet_requests_total", model=ARCH, status="400") == 1
    assert m("sanet_requests_total", model="none", status="404") == 1
    assert m("sanet_requests_total", model=ARCH, status="504") == 1
    assert m("sanet_images_total", model=ARCH) == 8
    assert m("sanet_batch_size_sum", model=ARCH) == 8
    assert m("sanet_batch_size_count", model=ARCH) == m("sanet_inference_seconds_count", model=ARCH)
    assert m("sanet_request_duration_seconds_count", model=ARCH) == 6
    assert m("sanet_queue_wait_seconds_count", model=ARCH) == 4
    # + junk, + the late one unless its 1 ms ran out before its decode
    assert 8 + 1 <= m("sanet_preprocess_seconds_count") <= 8 + 2
    assert m("sanet_rejected_total", model=ARCH, reason="deadline") == 1
    assert m("sanet_rejected_total", model=ARCH, reason="queue_full") == 0
    assert m("sanet_queue_depth", model=ARCH) == 0
    assert m("sanet_queue_saturation", model=ARCH) == 0
    assert m("sanet_inflight_requests") == 0
    # the worker was busy exactly the summed batch times, on the model's device
    busy = m("sanet_inference_busy_seconds_total", model=ARCH, device="cpu")
    assert busy > 0
    assert busy == pytest.approx(m("sanet_inference_seconds_sum", model=ARCH))
    assert (
        m(
            "sanet_model_info",
            model=ARCH,
            arch=ARCH,
            backend="torchscript",
            device="cpu",
            precision="fp32",
        )
        == 1
    )
