"""A served model's Triton model configuration (``GET /v2/models/{name}/config``, gRPC
``ModelConfig``), in the JSON form Triton's HTTP endpoint gives.

Triton's tools (perf_analyzer, Model Analyzer) read it for ``max_batch_size``, the inputs'
dims without the batch dimension, which inputs are optional, and the batching policy. Every
field comes from the engine's description of the model (``ServedModel.described``) and the
settings, so it cannot drift from what the service does:

- ``max_batch_size``: the batcher's largest batch; a request may carry more images (up to
  ``max_images_per_request``, in ``parameters``), which the batcher spreads over batches.
- inputs ``IMAGE`` (dims ``[1]``: one encoded image per batch row) and ``INPUT``
  (``[3, H, W]``), both optional since a request gives exactly one of them.
- ``dynamic_batching``: the batcher's delay, its admission bound and the default deadline;
  no preferred sizes, since the batcher runs whatever it has as soon as the device is free.
- ``instance_group``: one inference worker on the engine's device.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from service.front.job import ServedModel
from service.front.v2 import protocol

#: Triton's data type name of each v2 datatype this service uses
DATA_TYPES = {"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32"}


def model_config(served: ServedModel) -> dict[str, Any]:
    """The model's configuration as Triton's HTTP endpoint writes it (dims as numbers)."""
    described = served.described
    batching = described["batching"]
    meta = protocol.model_metadata(served)
    return {
        "name": served.name,
        "platform": meta["platform"],
        "backend": described["backend"],
        "version_policy": {"specific": {"versions": [int(v) for v in meta["versions"]]}},
        "max_batch_size": int(batching["max_batch_size"]),
        "input": [_input(t) for t in meta["inputs"]],
        "output": [_tensor(t) for t in meta["outputs"]],
        "dynamic_batching": _dynamic_batching(batching, served.settings.timeout_ms),
        "instance_group": [_instance_group(served.name, str(described["device"]))],
        "model_transaction_policy": {"decoupled": False},
        "parameters": {
            "max_images_per_request": {"string_value": str(served.settings.max_images_per_request)},
            "arch": {"string_value": str(described["arch"])},
            "precision": {"string_value": str(described["precision"])},
        },
    }


def model_config_message(served: ServedModel) -> Any:
    """The same configuration as the protobuf ``ModelConfig`` the gRPC answer carries."""
    return json_format.ParseDict(model_config(served), model_config_pb2.ModelConfig())


def _tensor(t: dict[str, Any]) -> dict[str, Any]:
    # the metadata's shape starts with the batch dimension; a config's dims do not
    return {"name": t["name"], "data_type": DATA_TYPES[t["datatype"]], "dims": t["shape"][1:]}


def _input(t: dict[str, Any]) -> dict[str, Any]:
    spatial = len(t["shape"]) == 4
    return {**_tensor(t), "format": "FORMAT_NCHW" if spatial else "FORMAT_NONE", "optional": True}


def _dynamic_batching(batching: dict[str, Any], timeout_ms: int) -> dict[str, Any]:
    return {
        "max_queue_delay_microseconds": round(float(batching["max_delay_ms"]) * 1000),
        "default_queue_policy": {
            "timeout_action": "REJECT",
            "default_timeout_microseconds": timeout_ms * 1000,
            "allow_timeout_override": True,  # X-Request-Timeout-Ms, the gRPC deadline, timeout
            "max_queue_size": int(batching["max_queue"]),
        },
    }


def _instance_group(name: str, device: str) -> dict[str, Any]:
    kind, _, index = device.partition(":")
    if kind != "cuda":
        return {"name": name, "kind": "KIND_CPU", "count": 1}
    return {"name": name, "kind": "KIND_GPU", "count": 1, "gpus": [int(index or 0)]}
