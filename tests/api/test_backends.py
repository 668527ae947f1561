"""The onnxruntime backend behind the real app: same answers, export cached across restarts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.app import Running
from tests.support.images import image_bytes


def _probabilities(running: Running, data: bytes) -> list[float]:
    r = running.client.post(
        "/classify?top_k=1000", content=data, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    ranked = r.json()["results"][0]["predictions"]
    return [p["probability"] for p in sorted(ranked, key=lambda p: p["class_index"])]


def test_auto_backend_is_onnxruntime_and_matches_torchscript(
    serve: Callable[..., Any], api: Running, tmp_path: Path
) -> None:
    photos = [image_bytes(i) for i in range(3)]
    expected = [_probabilities(api, p) for p in photos]
    with serve(backend="auto", cache_dir=tmp_path) as running:
        (info,) = running.client.get("/v1/models").json()["models"]
        assert info["backend"] == "onnxruntime" and info["fused_sa"] is False
        for photo, want in zip(photos, expected, strict=True):
            got = _probabilities(running, photo)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-4
    (cached,) = tmp_path.glob("*.onnx")
    assert info["weights"]["sha256"] in cached.name
    stamp = cached.stat().st_mtime_ns
    with serve(backend="onnxruntime", cache_dir=tmp_path) as running:
        assert _probabilities(running, photos[0]) == _probabilities(running, photos[0])
    assert cached.stat().st_mtime_ns == stamp  # reused, not exported again
