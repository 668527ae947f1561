"""The v2 tensors this service takes and gives, and their binary encoding.

Binary tensor data (the HTTP binary extension, gRPC raw contents) is little-endian; a BYTES
tensor is its elements one after another, each a 4-byte little-endian length and its bytes.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import InvalidParameter

_LEN = struct.Struct("<I")


@dataclass(frozen=True)
class InputTensor:
    """One request input: its data raw (binary) or as JSON / typed values, never both."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    raw: bytes | None = None
    values: list[Any] | None = None


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``classification`` > 0 asks for top-k strings."""

    name: str
    classification: int = 0
    binary: bool | None = None  # None: the request-level default


@dataclass(frozen=True)
class InferRequest:
    model: str
    id: str
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] = field(default_factory=list)
    timeout_us: int | None = None
    binary_output: bool = False


@dataclass(frozen=True)
class OutputTensor:
    """One answer tensor: FP32 ``array`` (float32) or BYTES ``array`` (object of bytes)."""

    name: str
    datatype: str
    array: np.ndarray
    binary: bool = False

    @property
    def shape(self) -> list[int]:
        return list(self.array.shape)

    def to_bytes(self) -> bytes:
        if self.datatype == "BYTES":
            return serialize_bytes(list(self.array.flatten()))
        return np.ascontiguousarray(self.array, dtype="<f4").tobytes()

    def to_json_data(self) -> list[Any]:
        flat = self.array.flatten()
        if self.datatype == "BYTES":
            return [b.decode("utf-8", "replace") for b in flat]
        return [float(x) for x in flat]


def serialize_bytes(elements: list[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(e)) + e for e in elements)


def deserialize_bytes(raw: bytes) -> list[bytes]:
    """Split a binary BYTES tensor into its elements (400 on a truncated one)."""
    out, pos, view = [], 0, memoryview(raw)
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidParameter("truncated BYTES tensor")
        (n,) = _LEN.unpack_from(raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise InvalidParameter("truncated BYTES tensor")
        out.append(bytes(view[pos : pos + n]))
        pos += n
    return out


def element_count(shape: tuple[int, ...]) -> int:
    if any(d < 0 for d in shape):
        raise InvalidParameter(f"negative dimension in shape {list(shape)}")
    return math.prod(shape)


def bytes_elements(t: InputTensor) -> list[bytes]:
    """A BYTES input's elements. In JSON each is a base64 string (an image is not text)."""
    if t.raw is not None:
        elements = deserialize_bytes(t.raw)
    else:
        elements = [_element(v) for v in _flat(t.values)]
    if len(elements) != element_count(t.shape):
        raise InvalidParameter(f"input {t.name} holds {len(elements)} elements, shape says more")
    return elements


def fp32_array(t: InputTensor) -> np.ndarray:
    """An FP32 input as a float32 array of its shape."""
    n = element_count(t.shape)
    try:
        if t.raw is not None:
            if len(t.raw) != 4 * n:
                raise InvalidParameter(f"input {t.name}: {len(t.raw)} bytes for {n} FP32 values")
            flat = np.frombuffer(t.raw, dtype="<f4")
        else:
            flat = np.asarray(_flat(t.values), dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidParameter(f"input {t.name} holds values that are not FP32") from None
    if flat.size != n:
        raise InvalidParameter(f"input {t.name} holds {flat.size} values for shape {list(t.shape)}")
    return flat.astype(np.float32, copy=False).reshape(t.shape)


def _flat(values: list[Any] | None) -> list[Any]:
    if values is None:
        raise InvalidParameter("an input has no data")
    out: list[Any] = []
    stack = [iter(values)]
    while stack:  # row-major nested lists, flattened without recursion limits
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def _element(v: Any) -> bytes:
    if isinstance(v, bytes):  # gRPC bytes_contents
        return v
    if not isinstance(v, str):
        raise InvalidParameter("BYTES elements must be base64 strings")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("a BYTES element is not valid base64") from None
