"""KServe v2 over HTTP, driven by the real ``tritonclient.http`` (what Triton users run).

Every answer is compared with /classify's full probability vector for the same image.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from model.postprocess import labels_for
from testing.app import ARCH, Running
from testing.ci import skip_or_fail
from testing.v2 import (
    classify_vector,
    image_input,
    photos,
    preprocessed,
    tensor_input,
    top_strings,
)

try:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError:  # pragma: no cover - the dev extra installs it
    httpclient = None

ATOL = 1e-6  # batches of other sizes may round the last bit differently


@pytest.fixture(scope="module")
def v2(serve: Callable[..., Any]) -> Iterator[tuple[Running, Any]]:
    if httpclient is None:
        skip_or_fail("tritonclient[http] is not installed")
    with serve(max_body_bytes=8 * 2**20) as running:  # room for a JSON FP32 image
        client = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}", concurrency=16)
        try:
            yield running, client
        finally:
            client.close()


def _image_input(blobs: list[bytes], binary: bool) -> Any:
    return image_input(httpclient, blobs, binary)


def test_health_and_metadata(v2: tuple[Running, Any]) -> None:
    _, client = v2
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(ARCH) and client.is_model_ready(ARCH, "1")
    meta = client.get_server_metadata()
    assert {"classification", "binary_tensor_data"} <= set(meta["extensions"])
    model = client.get_model_metadata(ARCH)
    assert model["name"] == ARCH and model["versions"] == ["1"]
    assert {(t["name"], t["datatype"]) for t in model["inputs"]} == {
        ("IMAGE", "BYTES"),
        ("INPUT", "FP32"),
    }
    assert model["outputs"] == [{"name": "PROBABILITIES", "datatype": "FP32", "shape": [-1, 1000]}]
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_image_bytes_several_per_request(v2: tuple[Running, Any], binary: bool) -> None:
    running, client = v2
    blobs = photos()
    out = httpclient.InferRequestedOutput("PROBABILITIES", binary_data=binary)
    result = client.infer(ARCH, [_image_input(blobs, binary)], outputs=[out], request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    probs = result.as_numpy("PROBABILITIES")
    assert probs.shape == (len(blobs), 1000) and probs.dtype == np.float32
    for row, blob in zip(probs, blobs, strict=True):
        np.testing.assert_allclose(row, classify_vector(running.client, blob), atol=ATOL)
    assert not np.allclose(probs[0], probs[1])  # the images are told apart


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_input_fp32_equals_classify(v2: tuple[Running, Any], binary: bool) -> None:
    running, client = v2
    blob = photos()[0]
    inp = tensor_input(httpclient, preprocessed(blob), binary)
    result = client.infer(ARCH, [inp])  # no outputs named: all, binary
    np.testing.assert_allclose(
        result.as_numpy("PROBABILITIES")[0], classify_vector(running.client, blob), atol=ATOL
    )


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification_extension(v2: tuple[Running, Any], binary: bool) -> None:
    running, client = v2
    blobs = photos()[:2]
    out = httpclient.InferRequestedOutput("PROBABILITIES", binary_data=binary, class_count=3)
    result = client.infer(ARCH, [_image_input(blobs, True)], outputs=[out])
    top = result.as_numpy("PROBABILITIES")
    assert top.shape == (2, 3)
    for row, blob in zip(top, blobs, strict=True):
        want = top_strings(classify_vector(running.client, blob), 3)
        got = [s.decode() if isinstance(s, bytes) else s for s in row]
        parsed = [(int(s.split(":")[1]), float(s.split(":")[0])) for s in got]
        assert [i for i, _ in parsed] == [i for i, _ in want]
        assert [g.split(":", 2)[2] for g in got] == [labels_for(1000)[i] for i, _ in want]
        np.testing.assert_allclose([p for _, p in parsed], [p for _, p in want], atol=1e-6)


def test_async_infer_sixteen_in_flight(v2: tuple[Running, Any]) -> None:
    running, client = v2
    blobs = photos()
    want = [classify_vector(running.client, b) for b in blobs]
    pending = [
        (i % len(blobs), client.async_infer(ARCH, [_image_input([blobs[i % len(blobs)]], True)]))
        for i in range(16)
    ]
    for i, handle in pending:
        got = handle.get_result(timeout=60).as_numpy("PROBABILITIES")[0]
        np.testing.assert_allclose(got, want[i], atol=ATOL)


def test_bad_input_is_the_clients_error(v2: tuple[Running, Any]) -> None:
    running, client = v2
    with pytest.raises(InferenceServerException) as bad:
        client.infer(ARCH, [_image_input([b"not an image"], True)])
    assert bad.value.status() == "400"
    wrong = tensor_input(httpclient, np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InferenceServerException, match="shape"):
        client.infer(ARCH, [wrong])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", [_image_input(photos()[:1], True)])
    r = running.client.post(f"/v2/models/{ARCH}/infer", content=b"{")
    assert r.status_code == 400 and isinstance(r.json()["error"], str)


def test_metrics_tell_protocols_apart(v2: tuple[Running, Any]) -> None:
    running, client = v2
    before = running.metric("sanet_requests_total", model=ARCH, status="200", protocol="v2_http")
    client.infer(ARCH, [_image_input(photos()[:1], True)])
    after = running.metric("sanet_requests_total", model=ARCH, status="200", protocol="v2_http")
    assert after == before + 1
    assert running.metric("sanet_requests_total", model=ARCH, protocol="classify") > 0
