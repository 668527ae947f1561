"""What the KServe v2 tests share: /classify's answer as a full vector, and inputs.

``lib`` is ``tritonclient.http`` or ``tritonclient.grpc``: both build inputs the same way,
but only the HTTP client has JSON (``binary=False``), where BYTES travel as base64 text.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np

import model
from testing.images import image_bytes
from testing.paths import SAMPLES


def classify_vector(client: httpx.Client, blob: bytes) -> np.ndarray:
    """/classify's full probability vector of one image (top_k = every class, by index)."""
    r = client.post("/classify?top_k=1000", content=blob, headers={"Content-Type": "image/jpeg"})
    r.raise_for_status()
    preds = r.json()["results"][0]["predictions"]
    vec = np.zeros(len(preds), dtype=np.float32)
    for p in preds:
        vec[p["class_index"]] = p["probability"]
    return vec


def photos() -> list[bytes]:
    """The coffee sample and three distinct synthetic photos."""
    return [(SAMPLES / "coffee.jpg").read_bytes(), *(image_bytes(i) for i in range(3))]


def preprocessed(blob: bytes) -> np.ndarray:
    """``blob`` preprocessed exactly as the service does: float32 ``(1, 3, 224, 224)``."""
    return model.preprocess(blob).unsqueeze(0).numpy().astype(np.float32)


def top_strings(vec: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(index, probability) of the ``k`` largest entries, largest first."""
    order = np.argsort(-vec, kind="stable")[:k]
    return [(int(i), float(vec[i])) for i in order]


def image_input(lib: Any, blobs: list[bytes], binary: bool = True) -> Any:
    """The ``IMAGE`` input (BYTES ``[n]``): encoded images, one per element."""
    inp = lib.InferInput("IMAGE", [len(blobs)], "BYTES")
    if binary:
        inp.set_data_from_numpy(np.array(blobs, dtype=np.object_))
    else:
        encoded = [base64.b64encode(b) for b in blobs]
        inp.set_data_from_numpy(np.array(encoded, dtype=np.object_), binary_data=False)
    return inp


def tensor_input(lib: Any, batch: np.ndarray, binary: bool = True) -> Any:
    """The ``INPUT`` input (FP32 ``batch.shape``): preprocessed images, or a wrong shape."""
    inp = lib.InferInput("INPUT", list(batch.shape), "FP32")
    if binary:
        inp.set_data_from_numpy(batch)
    else:
        inp.set_data_from_numpy(batch, binary_data=False)
    return inp
