"""Request bodies for the load generator, encoded once before a run so that the client
spends no CPU encoding: raw image bytes, multipart, base64 JSON, KServe v2 binary tensors."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from bench.http import v2

BOUNDARY = "sanet-bench-7f3a9c2e"


@dataclass(frozen=True)
class Body:
    """One pre-encoded request body: sent as is, so the client spends no CPU encoding."""

    content: bytes
    headers: dict[str, str]
    images: int


def _multipart(images: Sequence[bytes]) -> Body:
    parts = []
    for i, data in enumerate(images):
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="image{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    content = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return Body(content, headers, len(images))


def _base64(images: Sequence[bytes]) -> Body:
    doc = {"images": [base64.b64encode(data).decode("ascii") for data in images]}
    return Body(json.dumps(doc).encode(), {"Content-Type": "application/json"}, len(images))


def encode_bodies(images: Sequence[bytes], kind: str, per_request: int = 1) -> list[Body]:
    """One body per photo (raw: that photo; others: ``per_request`` photos starting there)."""
    if kind == "raw":
        return [Body(data, {"Content-Type": "image/jpeg"}, 1) for data in images]
    n = len(images)
    groups = [[images[(i + j) % n] for j in range(per_request)] for i in range(n)]
    if kind.startswith("v2_"):  # the gRPC sender builds messages from the same bytes
        return [Body(*v2.http_body(group), len(group)) for group in groups]
    encode = _multipart if kind == "multipart" else _base64
    return [encode(group) for group in groups]
