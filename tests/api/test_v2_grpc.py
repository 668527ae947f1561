"""KServe v2 over gRPC, driven by the real ``tritonclient.grpc`` (sync and asyncio clients).

Answers equal /classify's full probability vectors; errors arrive as the client's
``InferenceServerException`` with the mapped gRPC status.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from testing.app import ARCH, Running
from testing.ci import skip_or_fail
from testing.ports import free_port
from testing.v2 import (
    classify_vector,
    image_input,
    photos,
    preprocessed,
    tensor_input,
    top_strings,
)
from testing.waiting import poll

try:
    import tritonclient.grpc as grpcclient
    import tritonclient.grpc.aio as grpcaio
    from tritonclient.utils import InferenceServerException
except ImportError:  # pragma: no cover - the dev extra installs it
    grpcclient = None

ATOL = 1e-6


@pytest.fixture(scope="module")
def v2(serve: Callable[..., Any]) -> Iterator[tuple[Running, Any]]:
    if grpcclient is None:
        skip_or_fail("tritonclient[grpc] is not installed")
    with serve(grpc_port=free_port()) as running:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{running.settings.grpc_port}")
        try:
            yield running, client
        finally:
            client.close()


def _images(blobs: list[bytes]) -> Any:
    return image_input(grpcclient, blobs)


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


def test_health_and_metadata(v2: tuple[Running, Any]) -> None:
    _, client = v2
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(ARCH)
    assert "classification" in client.get_server_metadata().extensions
    meta = client.get_model_metadata(ARCH, as_json=True)
    assert meta["name"] == ARCH
    assert {(t["name"], t["datatype"]) for t in meta["inputs"]} == {
        ("IMAGE", "BYTES"),
        ("INPUT", "FP32"),
    }
    assert meta["outputs"][0]["shape"] == ["-1", "1000"]  # int64 in proto JSON: strings
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("nope")
    assert _status(missing) == "StatusCode.NOT_FOUND"


def test_image_bytes_several_per_request(v2: tuple[Running, Any]) -> None:
    running, client = v2
    blobs = photos()
    result = client.infer(ARCH, [_images(blobs)], request_id="g-1")
    assert result.get_response().id == "g-1"
    probs = result.as_numpy("PROBABILITIES")
    assert probs.shape == (len(blobs), 1000)
    for row, blob in zip(probs, blobs, strict=True):
        np.testing.assert_allclose(row, classify_vector(running.client, blob), atol=ATOL)


def test_input_fp32_and_classification(v2: tuple[Running, Any]) -> None:
    running, client = v2
    blob = photos()[0]
    inp = tensor_input(grpcclient, preprocessed(blob))
    want = classify_vector(running.client, blob)
    probs = client.infer(ARCH, [inp]).as_numpy("PROBABILITIES")
    np.testing.assert_allclose(probs[0], want, atol=ATOL)
    out = grpcclient.InferRequestedOutput("PROBABILITIES", class_count=2)
    top = client.infer(ARCH, [inp], outputs=[out]).as_numpy("PROBABILITIES")
    assert top.shape == (1, 2)
    assert [int(s.split(b":")[1]) for s in top[0]] == [i for i, _ in top_strings(want, 2)]


def test_asyncio_client_sixteen_in_flight(v2: tuple[Running, Any]) -> None:
    running, _ = v2
    blobs = photos()
    want = [classify_vector(running.client, b) for b in blobs]

    async def run() -> list[np.ndarray]:
        async with grpcaio.InferenceServerClient(
            f"127.0.0.1:{running.settings.grpc_port}"
        ) as client:
            calls = [client.infer(ARCH, [_images([blobs[i % 4]])]) for i in range(16)]
            return [r.as_numpy("PROBABILITIES")[0] for r in await asyncio.gather(*calls)]

    for i, got in enumerate(asyncio.run(run())):
        np.testing.assert_allclose(got, want[i % 4], atol=ATOL)


def test_errors_map_to_grpc_status(v2: tuple[Running, Any]) -> None:
    running, client = v2

    def counted(status: str) -> float:
        labels = {"model": ARCH, "status": status, "protocol": "v2_grpc"}
        return running.metric("sanet_requests_total", **labels)

    before = counted("400")
    cases = [
        (lambda: client.infer(ARCH, [_images([b"junk"])]), "INVALID_ARGUMENT"),
        (lambda: client.infer("nope", [_images(photos()[:1])]), "NOT_FOUND"),
        (lambda: client.infer(ARCH, [_images([b"x" * (3 * 2**20)])]), "RESOURCE_EXHAUSTED"),
    ]
    for call, status in cases:
        with pytest.raises(InferenceServerException) as err:
            call()
        assert _status(err) == f"StatusCode.{status}", err.value
    assert counted("400") == before + 1  # the junk image, once


def test_deadline_shedding_and_drain(serve: Callable[..., Any]) -> None:
    if grpcclient is None:
        skip_or_fail("tritonclient[grpc] is not installed")
    # 12 slots: SANET_MAX_QUEUE (8) plus one batch (4)
    with serve(grpc_port=free_port(), max_queue=8) as running, running.engine_held() as hold:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{running.settings.grpc_port}")
        blob = photos()[:1]
        done: queue.Queue[Any] = queue.Queue()

        def finished(result: Any, error: Any) -> None:
            done.put(error)

        client.async_infer(ARCH, [_images(blob * 4)], callback=finished)  # held in the engine
        running.wait_slots(4)
        with pytest.raises(InferenceServerException) as late:  # waits behind the held engine
            client.infer(ARCH, [_images(blob)], client_timeout=0.3)
        assert _status(late) == "StatusCode.DEADLINE_EXCEEDED"
        client.async_infer(ARCH, [_images(blob * 8)], callback=finished)  # fills the slots
        running.wait_slots(12)
        with pytest.raises(InferenceServerException) as full:
            client.infer(ARCH, [_images(blob)])
        assert _status(full) == "StatusCode.UNAVAILABLE"
        # read while the tree runs: once draining, it exits when its admitted work is done
        assert running.metric("sanet_rejected_total", model=ARCH, reason="queue_full") == 1
        running.terminate()
        poll(lambda: running.client.get("/readyz").status_code == 503, 10, "draining")
        with pytest.raises(InferenceServerException) as draining:
            client.infer(ARCH, [_images(blob)])
        assert _status(draining) == "StatusCode.UNAVAILABLE"
        hold.release()  # what was admitted before the drain still gets its answer
        assert [done.get(timeout=30), done.get(timeout=30)] == [None, None]
        client.close()
