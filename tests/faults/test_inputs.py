"""Inputs: image/gif, SANET_MAX_QUEUE=4 alone, HEIC and AVIF."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from service import cli
from service.config import Settings
from testing.images import image_bytes


def _encoded(fmt: str) -> bytes:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    img = Image.open(io.BytesIO(image_bytes(3, "PNG", (120, 90))))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("media_type", "fmt"),
    [("image/gif", "GIF"), ("image/avif", "AVIF"), ("image/heic", "HEIF")],
)
def test_every_decoded_format_is_accepted_by_its_media_type(
    serve: Callable[..., Any], media_type: str, fmt: str
) -> None:
    with serve() as running:
        r = running.client.post(
            "/classify", content=_encoded(fmt), headers={"Content-Type": media_type}
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 1


def test_refused_media_type_names_the_accepted_ones(serve: Callable[..., Any]) -> None:
    with serve() as running:
        r = running.client.post("/classify", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        message = r.json()["error"]["message"]
        for accepted in ("image/jpeg", "image/gif", "image/heic", "image/avif", "multipart"):
            assert accepted in message


def test_lowering_the_queue_alone_lowers_the_per_request_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANET_MAX_QUEUE", "4")
    assert cli.load_settings([]).max_images_per_request == 4
    assert cli.load_settings(["--max-queue", "2"]).max_images_per_request == 2
    assert Settings(max_queue=500).max_images_per_request == 32


def test_only_an_explicit_contradiction_is_an_error() -> None:
    with pytest.raises(ValidationError, match="SANET_MAX_IMAGES_PER_REQUEST=8"):
        Settings(max_queue=4, max_images_per_request=8)
