"""``auto`` behind the real app: a measured choice, same answers, decision and export cached;
bf16 on CPU with its fidelity gate in /v1/models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.cpu import has_bf16
from testing.app import Running
from testing.images import image_bytes
from testing.training import write_images
from testing.v2 import classify_vector

ATOL = 1e-4  # the measured choice may be another engine than torchscript


def _matches(running: Running, photos: list[bytes], expected: list[np.ndarray]) -> None:
    for photo, want in zip(photos, expected, strict=True):
        np.testing.assert_allclose(classify_vector(running.client, photo), want, atol=ATOL)


def test_auto_backend_is_measured_matches_torchscript_and_is_cached(
    serve: Callable[..., Any], api: Running, tmp_path: Path
) -> None:
    photos = [image_bytes(i) for i in range(3)]
    expected = [classify_vector(api.client, p) for p in photos]  # torchscript
    with serve(backend="auto", cache_dir=tmp_path) as running:
        (info,) = running.client.get("/v1/models").json()["models"]
        engine = info["engine"]
        assert engine["requested"] == "auto" and engine["decision"] == "measured"
        assert info["backend"] in engine["timings_ms"]  # the choice is one it timed
        assert len(engine["timings_ms"]) >= 2
        _matches(running, photos, expected)
    cached = sorted(tmp_path.glob("*.onnx"))
    assert cached and all(info["weights"]["sha256"] in c.name for c in cached)
    stamps = [c.stat().st_mtime_ns for c in cached]
    with serve(backend="auto", cache_dir=tmp_path) as running:
        (again,) = running.client.get("/v1/models").json()["models"]
        assert again["engine"]["decision"] == "cached"
        assert again["backend"] == info["backend"]
        _matches(running, photos, expected)  # the cached engine answers as torchscript
    assert [c.stat().st_mtime_ns for c in cached] == stamps  # reused, not exported again


@pytest.mark.skipif(not has_bf16(), reason="this CPU has no AVX512_BF16 or AMX")
def test_bf16_on_cpu_is_gated_and_reported(
    serve: Callable[..., Any], api: Running, tmp_path: Path
) -> None:
    calibration = write_images(tmp_path / "calibration", 12, 4, seed=1)
    photo = image_bytes(0)
    expected = classify_vector(api.client, photo)
    with serve(backend="auto", precision="bf16", calibration_dir=calibration) as running:
        (info,) = running.client.get("/v1/models").json()["models"]
        assert (info["backend"], info["precision"], info["device"]) == ("openvino", "bf16", "cpu")
        gate = info["engine"]["bf16"]
        assert gate["images"] == 12 and gate["min_agreement"] == 0.99
        assert gate["agreement"] >= 0.99 and gate["max_prob_diff"] <= 0.05
        got = classify_vector(running.client, photo)
        assert got.argmax() == expected.argmax()
        assert float(np.abs(got - expected).max()) <= 0.05
