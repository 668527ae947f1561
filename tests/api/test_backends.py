"""``auto`` behind the real app: a measured choice, same answers, decision and export cached;
bf16 on CPU with its fidelity gate in /v1/models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model.cpu import has_bf16
from testing.app import Running
from testing.images import image_bytes
from testing.training import write_images


def _probabilities(running: Running, data: bytes) -> list[float]:
    r = running.client.post(
        "/classify?top_k=1000", content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    ranked = r.json()["results"][0]["predictions"]
    return [p["probability"] for p in sorted(ranked, key=lambda p: p["class_index"])]


def test_auto_backend_is_measured_matches_torchscript_and_is_cached(
    serve: Callable[..., Any], api: Running, tmp_path: Path
) -> None:
    photos = [image_bytes(i) for i in range(3)]
    expected = [_probabilities(api, p) for p in photos]
    with serve(backend="auto", cache_dir=tmp_path) as running:
        (info,) = running.client.get("/v1/models").json()["models"]
        engine = info["engine"]
        assert engine["requested"] == "auto" and engine["decision"] == "measured"
        assert info["backend"] in engine["timings_ms"]  # the choice is one it timed
        assert len(engine["timings_ms"]) >= 2
        for photo, want in zip(photos, expected, strict=True):
            got = _probabilities(running, photo)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-4
    cached = sorted(tmp_path.glob("*.onnx"))
    assert cached and all(info["weights"]["sha256"] in c.name for c in cached)
    stamps = [c.stat().st_mtime_ns for c in cached]
    with serve(backend="auto", cache_dir=tmp_path) as running:
        (again,) = running.client.get("/v1/models").json()["models"]
        assert again["engine"]["decision"] == "cached"
        assert again["backend"] == info["backend"]
        assert _probabilities(running, photos[0]) == _probabilities(running, photos[0])
    assert [c.stat().st_mtime_ns for c in cached] == stamps  # reused, not exported again


@pytest.mark.skipif(not has_bf16(), reason="this CPU has no AVX512_BF16 or AMX")
def test_bf16_on_cpu_is_gated_and_reported(
    serve: Callable[..., Any], api: Running, tmp_path: Path
) -> None:
    calibration = write_images(tmp_path / "calibration", 12, 4, seed=1)
    photo = image_bytes(0)
    expected = _probabilities(api, photo)
    with serve(backend="auto", precision="bf16", calibration_dir=calibration) as running:
        (info,) = running.client.get("/v1/models").json()["models"]
        assert (info["backend"], info["precision"], info["device"]) == ("openvino", "bf16", "cpu")
        gate = info["engine"]["bf16"]
        assert gate["images"] == 12 and gate["min_agreement"] == 0.99
        assert gate["agreement"] >= 0.99 and gate["max_prob_diff"] <= 0.05
        got = _probabilities(running, photo)
        assert got.index(max(got)) == expected.index(max(expected))
        assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 0.05
