"""Inputs: image/gif, HEIC and AVIF accepted by their media types; others refused by name.

Their pixels are checked against a losslessly saved copy in tests/unit/test_preprocess.py."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from testing.app import Running
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
    tree: Running, media_type: str, fmt: str
) -> None:
    r = tree.client.post("/classify", content=_encoded(fmt), headers={"Content-Type": media_type})
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 1


def test_refused_media_type_names_the_accepted_ones(tree: Running) -> None:
    r = tree.client.post("/classify", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    message = r.json()["error"]["message"]
    for accepted in ("image/jpeg", "image/gif", "image/heic", "image/avif", "multipart"):
        assert accepted in message
