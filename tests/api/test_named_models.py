"""Served models are named apart from their architecture: two checkpoints of one arch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from testing.app import ARCH
from testing.checkpoints import separating_net, write_authors_checkpoint
from testing.images import image_bytes

JPEG = {"Content-Type": "image/jpeg"}


def test_two_checkpoints_of_one_arch_side_by_side(
    serve: Callable[..., Any], checkpoint: Path, tmp_path: Path
) -> None:
    net = separating_net(seed=3, num_classes=10)
    ten = write_authors_checkpoint(tmp_path / "ten.pth.tar", net, ARCH)
    with serve(models=f"{ARCH}={checkpoint},tenclass={ARCH}:{ten}") as running:
        models = {m["name"]: m for m in running.client.get("/v1/models").json()["models"]}
        assert set(models) == {ARCH, "tenclass"}
        assert models["tenclass"]["arch"] == ARCH and models["tenclass"]["num_classes"] == 10
        assert models[ARCH]["num_classes"] == 1000
        assert models["tenclass"]["weights"]["path"] == str(ten)

        answer = running.client.post(
            "/classify?model=tenclass&top_k=20", content=image_bytes(1), headers=JPEG
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "tenclass"
        predictions = body["results"][0]["predictions"]
        assert len(predictions) == 10  # top_k is capped by the head
        assert {p["label"] for p in predictions} == {f"class_{i}" for i in range(10)}
        default = running.client.post("/classify", content=image_bytes(1), headers=JPEG).json()
        assert default["model"] == ARCH

        assert running.metric("sanet_requests_total", model="tenclass", status="200") == 1
        assert running.metric("sanet_images_total", model="tenclass") == 1
        assert running.metric("sanet_model_info", model="tenclass", arch=ARCH) == 1
