"""The Triton model config (``/v2/models/{name}/config``, gRPC ``ModelConfig``) as Triton's
tools read it, and the RPCs the service does not offer, driven by the real ``tritonclient``.

The server runs with batching settings unlike the defaults, so a config written out by hand
could not pass; infers use exactly the shapes the config implies (``[max_batch_size, *dims]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from testing.app import ARCH, Running
from testing.ci import skip_or_fail
from testing.ports import free_port
from testing.v2 import classify_vector, image_input, photos, preprocessed
from testing.waiting import poll

try:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2
    from tritonclient.utils import InferenceServerException
except ImportError:  # pragma: no cover - the dev extra installs it
    grpcclient = None

ATOL = 1e-6
SETTINGS = {"max_batch_size": 3, "max_delay_ms": 1.5, "max_queue": 48, "timeout_ms": 7000}


@dataclass
class Clients:
    running: Running
    http: Any
    grpc: Any


@pytest.fixture(scope="module")
def v2(serve: Callable[..., Any]) -> Iterator[Clients]:
    if grpcclient is None:
        skip_or_fail("tritonclient[http,grpc] is not installed")
    with serve(grpc_port=free_port(), max_body_bytes=4 * 2**20, **SETTINGS) as running:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{running.port}")
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{running.settings.grpc_port}")
        try:
            yield Clients(running, http, grpc)
        finally:
            http.close()
            grpc.close()


def test_config_fields_come_from_the_served_model_and_settings(v2: Clients) -> None:
    config = v2.http.get_model_config(ARCH)
    assert config == v2.http.get_model_config(ARCH, "1")
    assert config["name"] == ARCH and config["backend"] == "torchscript"
    assert config["platform"] == v2.http.get_model_metadata(ARCH)["platform"]
    assert config["max_batch_size"] == SETTINGS["max_batch_size"]
    tensors = {t["name"]: t for t in config["input"] + config["output"]}
    assert {n: (t["data_type"], t["dims"]) for n, t in tensors.items()} == {
        "IMAGE": ("TYPE_STRING", [1]),
        "INPUT": ("TYPE_FP32", [3, 224, 224]),
        "PROBABILITIES": ("TYPE_FP32", [1000]),
    }
    assert all(t["optional"] for t in config["input"])  # a request gives one of the two
    batching = config["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 1500
    assert "preferred_batch_size" not in batching
    policy = batching["default_queue_policy"]
    assert policy["max_queue_size"] == SETTINGS["max_queue"]
    assert policy["default_timeout_microseconds"] == SETTINGS["timeout_ms"] * 1000
    assert config["instance_group"] == [{"name": ARCH, "kind": "KIND_CPU", "count": 1}]
    assert config["parameters"]["max_images_per_request"]["string_value"] == "8"
    with pytest.raises(InferenceServerException, match="unknown model"):
        v2.http.get_model_config("nope")
    with pytest.raises(InferenceServerException, match="no version"):
        v2.http.get_model_config(ARCH, "2")


def test_grpc_config_is_the_same_message(v2: Clients) -> None:
    http_json = v2.http.get_model_config(ARCH)
    want = json_format.ParseDict(http_json, model_config_pb2.ModelConfig())  # a valid config
    assert v2.grpc.get_model_config(ARCH).config == want
    assert v2.grpc.get_model_config(ARCH, "1").config == want
    with pytest.raises(InferenceServerException) as missing:
        v2.grpc.get_model_config("nope")
    assert str(missing.value.status()) == "StatusCode.NOT_FOUND"


def _implied_inputs(module: Any, config: dict[str, Any], blob: bytes) -> list[Any]:
    """Each input at the shape the config implies: ``[max_batch_size, *dims]``."""
    b = config["max_batch_size"]
    dims = {t["name"]: [int(d) for d in t["dims"]] for t in config["input"]}
    image = module.InferInput("IMAGE", [b, *dims["IMAGE"]], "BYTES")
    image.set_data_from_numpy(np.array([blob] * b, dtype=np.object_).reshape(b, *dims["IMAGE"]))
    tensor = module.InferInput("INPUT", [b, *dims["INPUT"]], "FP32")
    tensor.set_data_from_numpy(np.repeat(preprocessed(blob), b, axis=0))
    return [image, tensor]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_infer_takes_the_shapes_the_config_implies(v2: Clients, protocol: str) -> None:
    client, module = (v2.http, httpclient) if protocol == "http" else (v2.grpc, grpcclient)
    blob = photos()[0]
    want = classify_vector(v2.running.client, blob)
    config = v2.http.get_model_config(ARCH)
    for inp in _implied_inputs(module, config, blob):
        probs = client.infer(ARCH, [inp]).as_numpy("PROBABILITIES")
        assert probs.shape == (config["max_batch_size"], 1000)
        for row in probs:
            np.testing.assert_allclose(row, want, atol=ATOL)
    flat = image_input(module, [blob, blob])  # the shape taken before the config
    assert client.infer(ARCH, [flat]).as_numpy("PROBABILITIES").shape == (2, 1000)


def _unoffered_calls(client: Any) -> dict[str, Callable[[], Any]]:
    return {
        "RepositoryIndex": client.get_model_repository_index,
        "ModelStatistics": lambda: client.get_inference_statistics(ARCH),
        "RepositoryModelLoad": lambda: client.load_model(ARCH),
        "SystemSharedMemoryRegister": lambda: client.register_system_shared_memory(
            "region", "/sanet-none", 64
        ),
        "SystemSharedMemoryStatus": client.get_system_shared_memory_status,
        "CudaSharedMemoryRegister": lambda: client.register_cuda_shared_memory(
            "region", b"\0" * 64, 0, 64
        ),
        "CudaSharedMemoryUnregister": client.unregister_cuda_shared_memory,
        "TraceSetting": client.get_trace_settings,
    }


def test_unoffered_rpcs_answer_unimplemented_naming_the_rpc(v2: Clients) -> None:
    for rpc, call in _unoffered_calls(v2.grpc).items():
        with pytest.raises(InferenceServerException) as refused:
            call()
        assert str(refused.value.status()) == "StatusCode.UNIMPLEMENTED", (rpc, refused.value)
        assert rpc in refused.value.message(), refused.value
    errors: list[Any] = []
    v2.grpc.start_stream(callback=lambda result, error: errors.append(error))
    poll(lambda: errors, 10, "the stream's refusal")  # refused on opening, before any request
    v2.grpc.stop_stream()
    assert [str(e.status()) for e in errors] == ["StatusCode.UNIMPLEMENTED"]
    assert "ModelStreamInfer" in errors[0].message()
    assert v2.grpc.is_server_live()  # a refusal is not a fault
    assert not v2.running.metric("sanet_requests_total", status="500", protocol="v2_grpc")
    assert "gRPC call failed" not in v2.running.log
