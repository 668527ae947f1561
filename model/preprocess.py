"""Image bytes -> normalised (3, 224, 224) tensor, the SA-Net evaluation transform.

Resize the shorter side to 256 (bilinear, antialiased), center-crop 224, scale to [0, 1],
normalise with the ImageNet mean/std. Pillow releases the GIL while decoding and
resampling, so a thread pool runs this in parallel.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import struct
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from model.errors import ImageDecodeError, ImageTooLargeError

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "AVIF", "HEIF")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE = 256
CROP = 224
DEFAULT_MAX_PIXELS = 50_000_000

_SCALE = np.array([1.0 / (255.0 * s) for s in STD], dtype=np.float32)  # per channel (HWC)
_SHIFT = np.array([m / s for m, s in zip(MEAN, STD, strict=True)], dtype=np.float32)
_LEVELS = np.arange(256, dtype=np.float32)[None, :] * _SCALE[:, None] - _SHIFT[:, None]
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    struct.error,
)


@functools.cache
def _register_heif() -> None:
    """HEIC/HEIF (what phones upload) through the maintained ``pillow-heif`` plugin; AVIF is
    Pillow's own (>= 11.3). Registered on first decode, not at import."""
    try:
        import pillow_heif
    except ImportError:  # without the plugin HEIF stays unsupported (400 invalid_image)
        return
    pillow_heif.register_heif_opener()


#: given an image's pixel count (from its header), a context held while it decodes and is
#: transformed: lets a caller bound how many large images are in memory at once
PixelGate = Callable[[int], AbstractContextManager[object]]


def _no_gate(_pixels: int) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` after checking the header's pixel count against ``max_pixels``."""
    img = _open_header(data, max_pixels)
    _load(img)
    return img


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty image body")
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own, larger, limit came first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageTooLargeError(int(found.group(1)) if found else -1, max_pixels) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "not a supported image (JPEG, PNG, WebP, BMP, TIFF, GIF, AVIF, HEIC)"
        ) from None
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"unreadable image header: {type(exc).__name__}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLargeError(width * height, max_pixels)
    if width < 1 or height < 1:
        raise ImageDecodeError("image has no pixels")
    return img


def _load(img: Image.Image) -> None:
    try:
        img.seek(0)
        img.load()
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(
            f"truncated or corrupt {img.format} data: {type(exc).__name__}"
        ) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any mode to 8-bit RGB (alpha over white)."""
    with contextlib.suppress(*_DECODE_ERRORS):  # bad EXIF loses the orientation, not the image
        img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif img.mode == "F":
        img = img.point(lambda v: v * 255).convert("L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def resized_size(w: int, h: int, resize: int = RESIZE) -> tuple[int, int]:
    """The size with the shorter side at ``resize`` (the long side truncated)."""
    if w <= h:
        return resize, int(resize * h / w)
    return int(resize * w / h), resize


def resize_crop(img: Image.Image, resize: int = RESIZE, crop: int = CROP) -> Image.Image:
    """Shorter side to ``resize`` (long side truncated), then the centered ``crop`` square.

    Only the crop is resampled: Pillow's ``box`` takes the crop's source rectangle and the
    filter still reads the pixels around it, so this is the full resize followed by the
    crop, computed on a third to a half of the pixels. The filter positions are the same up
    to float rounding, so a pixel may differ from resize-then-crop by one 8-bit level
    (tests/unit/test_preprocess.py holds it to that).
    """
    w, h = img.size
    new_w, new_h = resized_size(w, h, resize)
    left = round((new_w - crop) / 2.0)
    top = round((new_h - crop) / 2.0)
    if (new_w, new_h) == (w, h):
        return img.crop((left, top, left + crop, top + crop))
    sx, sy = w / new_w, h / new_h
    box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
    return img.resize((crop, crop), Image.Resampling.BILINEAR, box=box)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB image -> float32 (3, H, W), scaled to [0, 1] and ImageNet-normalised.

    A per-channel table of the 256 normalised values, indexed by the pixels: the same
    float32 arithmetic as scaling each pixel, done once per level, and the gather writes
    the channel-first layout directly. In numpy on purpose: torch would run this as an
    OpenMP-parallel op in the calling (preprocessing) thread, and every such thread's
    OpenMP team slows the inference thread's parallel regions (measured: 66 ms instead of
    43 ms per SANet-50 image).
    """
    hwc = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(np.stack([_LEVELS[c][hwc[..., c]] for c in range(3)]))


def preprocess(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    gate: PixelGate = _no_gate,
    jpeg_draft: bool = False,
) -> torch.Tensor:
    """Decode ``data`` and apply the evaluation transform: a (3, 224, 224) float32 tensor.

    ``gate(pixels)`` is entered once the header is read, before the pixels are decoded.
    ``jpeg_draft`` (opt-in, ``SANET_JPEG_DRAFT``) lets the JPEG decoder scale by 1/2, 1/4
    or 1/8 in the DCT while staying at least the resize's size: a 4032 x 3024 photo decodes
    5-8x faster, but the pixels are no longer the eval transform's (README "Performance").
    """
    img = _open_header(data, max_pixels)
    if jpeg_draft and img.format == "JPEG":
        img.draft(None, resized_size(*img.size))
    with gate(img.size[0] * img.size[1]):
        _load(img)
        try:
            rgb = to_rgb(img)
            return to_tensor(resize_crop(rgb))
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(
                f"cannot convert {img.format} image: {type(exc).__name__}"
            ) from None
        finally:
            img.close()
