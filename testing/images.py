"""Test images."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(i: int, fmt: str = "JPEG", size: tuple[int, int] = (96, 80)) -> bytes:
    """A distinct photo-like image per ``i``: colour gradient plus a block pattern."""
    w, h = size
    hue = [(i * 67) % 256, (i * 131 + 40) % 256, (i * 29 + 90) % 256]
    img = Image.new("RGB", size, (hue[0], hue[1], hue[2]))
    px = img.load()
    assert px is not None
    step = 4 + i % 7
    for y in range(0, h, 2):
        for x in range(0, w, 2):
            on = ((x // step) + (y // step) + i) % 2
            px[x, y] = (hue[0] * on, (x * 255) // w, (y * 255) // h)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()
