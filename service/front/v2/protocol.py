"""What v2 HTTP and v2 gRPC share: metadata, and one infer call over a ``ServedModel``.

Inputs (one per request): ``IMAGE`` BYTES ``[-1, 1]`` (``[-1]`` is taken too), encoded images
decoded exactly as ``/classify`` decodes them; or ``INPUT`` FP32 ``[-1, 3, 224, 224]``, already
preprocessed. Output: ``PROBABILITIES`` FP32 ``[-1, num_classes]``, or with the classification
extension BYTES ``[-1, k]`` strings ``"probability:index:label"`` as Triton writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.errors import InvalidParameter, ModelNotFound, TooManyImages
from service.front.job import Classification, Disconnect, Job, ServedModel
from service.front.v2.tensors import (
    InferRequest,
    InputTensor,
    OutputTensor,
    RequestedOutput,
    bytes_elements,
    fp32_array,
)

SERVER_NAME = "sanet-serve"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ("classification", "binary_tensor_data")
MODEL_VERSION = "1"
IMAGE, INPUT, PROBABILITIES = "IMAGE", "INPUT", "PROBABILITIES"
PLATFORM = "pytorch_sanet"


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(EXTENSIONS)}


def check_version(name: str, version: str | None) -> None:
    """Each model has one version, ``1``; any other is unknown."""
    if version not in (None, "", MODEL_VERSION):
        raise ModelNotFound(f"model {name[:64]!r} has no version {version[:16]!r}")


def model_metadata(served: ServedModel) -> dict[str, Any]:
    """The v2 model metadata: its two alternative inputs and its one output."""
    c, h, w = served.input_shape
    return {
        "name": served.name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [
            {"name": IMAGE, "datatype": "BYTES", "shape": [-1, 1]},
            {"name": INPUT, "datatype": "FP32", "shape": [-1, c, h, w]},
        ],
        "outputs": [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, served.num_classes]},
        ],
    }


def deadline_of(request: InferRequest, started: float, default_s: float) -> float:
    """The earliest of the transport's deadline (``default_s`` from now) and ``timeout``."""
    budget = default_s
    if request.timeout_us is not None:
        if request.timeout_us <= 0:
            raise InvalidParameter("timeout must be a positive number of microseconds")
        budget = min(budget, request.timeout_us / 1e6)
    return started + budget


async def infer(
    served: ServedModel,
    job: Job,
    request: InferRequest,
    disconnect: Disconnect | None = None,
) -> list[OutputTensor]:
    """Run ``request`` through the model's path (admitted already); the answer's outputs.

    ``disconnect`` returns when the client went away (HTTP); gRPC needs none, since a
    cancelled call cancels its task and with it the queued work.
    """
    outputs = _requested(request)
    k = max((o.classification for o in outputs), default=0)
    if k > served.num_classes:
        raise InvalidParameter(f"classification asks for {k} of {served.num_classes} classes")
    (tensor,) = _one_input(request)
    limit = served.settings.max_images_per_request
    if tensor.name == IMAGE:
        images = _images(tensor)
        _check_count(len(images), limit)
        result = await job.classify(images, top_k=max(k, 1), disconnect=disconnect)
    else:
        arrays = _arrays(tensor, served.input_shape, limit)
        result = await job.predict(arrays, top_k=max(k, 1), disconnect=disconnect)
    return [_render(o, result, request.binary_output) for o in outputs]


def _requested(request: InferRequest) -> list[RequestedOutput]:
    if not request.outputs:
        return [RequestedOutput(PROBABILITIES)]
    for o in request.outputs:
        if o.name != PROBABILITIES:
            raise InvalidParameter(f"unknown output {o.name[:64]!r}; the model has PROBABILITIES")
        if o.classification < 0:
            raise InvalidParameter("classification must be >= 0")
    return request.outputs


def _one_input(request: InferRequest) -> list[InputTensor]:
    if len(request.inputs) != 1:
        raise InvalidParameter(f"give exactly one input, {IMAGE} or {INPUT}")
    t = request.inputs[0]
    want = {IMAGE: "BYTES", INPUT: "FP32"}.get(t.name)
    if want is None:
        raise InvalidParameter(f"unknown input {t.name[:64]!r}; use {IMAGE} or {INPUT}")
    if t.datatype != want:
        raise InvalidParameter(f"input {t.name} must be {want}, not {t.datatype[:16]}")
    return [t]


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise InvalidParameter("the input holds no image")
    if n > limit:
        raise TooManyImages(f"at most {limit} images per request")


def _images(t: InputTensor) -> list[bytes]:
    if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1):
        raise InvalidParameter(f"{IMAGE} has shape [-1] or [-1, 1], not {list(t.shape)}")
    return bytes_elements(t)


def _arrays(t: InputTensor, input_shape: tuple[int, ...], limit: int) -> list[np.ndarray]:
    if len(t.shape) != 4 or tuple(t.shape[1:]) != input_shape:
        raise InvalidParameter(f"{INPUT} has shape [-1, {', '.join(map(str, input_shape))}]")
    _check_count(t.shape[0], limit)
    array = fp32_array(t)
    if not np.isfinite(array).all():
        raise InvalidParameter(f"{INPUT} holds NaN or infinite values")
    return list(array)


def _render(o: RequestedOutput, result: Classification, binary_default: bool) -> OutputTensor:
    binary = binary_default if o.binary is None else o.binary
    if o.classification:
        rows = [
            [f"{p.probability:f}:{p.class_index}:{p.label}".encode() for p in predictions]
            for predictions in result.predictions
        ]
        array = np.array(rows, dtype=np.object_).reshape(len(rows), o.classification)
        return OutputTensor(PROBABILITIES, "BYTES", array, binary)
    return OutputTensor(PROBABILITIES, "FP32", result.probabilities, binary)
