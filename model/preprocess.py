"""Image bytes -> normalised (3, 224, 224) tensor, the SA-Net evaluation transform.

Two steps, so that they can run in different processes:

- :func:`crop`: decode, resize the shorter side to 256 (bilinear, antialiased), center-crop
  224: a uint8 (224, 224, 3) RGB array, written into a caller's buffer when given (the
  service's front ends write it straight into a shared-memory slot);
- :func:`normalize`: a uint8 (B, 224, 224, 3) batch -> float32 (B, 3, 224, 224), scaled to
  [0, 1] and ImageNet-normalised (the engine does this on the batch, on its device).

:func:`preprocess` is both for one image. Pillow releases the GIL while decoding and
resampling.
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

SCALE = np.array([1.0 / (255.0 * s) for s in STD], dtype=np.float32)  # per channel (HWC)
SHIFT = np.array([m / s for m, s in zip(MEAN, STD, strict=True)], dtype=np.float32)
#: the normalised value of each 8-bit level, per channel (3, 256): what normalize computes
LEVELS = np.arange(256, dtype=np.float32)[None, :] * SCALE[:, None] - SHIFT[:, None]
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
        ImageOps.exif_transpose(img, in_place=True)  # not a copy of an upright image
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
    """RGB image -> float32 (3, H, W), scaled to [0, 1] and ImageNet-normalised."""
    hwc = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return normalize(hwc.unsqueeze(0))[0]


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> float32 (B, 3, H, W), ``(x / 255 - mean) / std``.

    Computed as ``x * (1 / (255 std)) - mean / std`` in float32, one multiply then one
    subtract per element (no fused multiply-add), on ``batch``'s device: the same values, bit
    for bit, as the per-level table ``LEVELS`` (tests/unit/test_preprocess.py pins it).
    """
    if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[-1] != 3:
        raise ValueError(
            f"expected a uint8 (B, H, W, 3) batch, got {batch.dtype} {tuple(batch.shape)}"
        )
    scale, shift = scale_shift(batch.device)
    return normalize_nhwc(batch, scale, shift, False)


def scale_shift(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (1, 3, 1, 1) float32 scale and shift of ``normalize`` on ``device``."""
    scale = torch.from_numpy(SCALE.copy()).view(1, 3, 1, 1).to(device)
    shift = torch.from_numpy(SHIFT.copy()).view(1, 3, 1, 1).to(device)
    return scale, shift


def normalize_nhwc(
    x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """``normalize``'s math with the constants given (scriptable: the engines' uint8 entry
    and the CUDA runner call it), NCHW or channels_last."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=fmt)
    return out.mul_(scale).sub_(shift)


def crop(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    gate: PixelGate = _no_gate,
    jpeg_draft: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode ``data`` and resize/crop it: a uint8 (224, 224, 3) RGB array (``out`` if given).

    ``gate(pixels)`` is entered once the header is read, before the pixels are decoded.
    ``jpeg_draft`` (opt-in, ``SANET_JPEG_DRAFT``) lets the JPEG decoder scale by 1/2, 1/4
    or 1/8 in the DCT while staying at least the resize's size: a 4032 x 3024 photo decodes
    5-8x faster, but the pixels are no longer the eval transform's (docs/performance.md).
    """
    img = _open_header(data, max_pixels)
    if jpeg_draft and img.format == "JPEG":
        img.draft(None, resized_size(*img.size))
    with gate(img.size[0] * img.size[1]):
        _load(img)
        try:
            pixels = np.asarray(resize_crop(to_rgb(img)), dtype=np.uint8)
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(
                f"cannot convert {img.format} image: {type(exc).__name__}"
            ) from None
        finally:
            img.close()
    if out is None:
        return pixels.copy()
    out[...] = pixels
    return out


def preprocess(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    gate: PixelGate = _no_gate,
    jpeg_draft: bool = False,
) -> torch.Tensor:
    """:func:`crop` then :func:`normalize`: one image as a float32 (3, 224, 224) tensor."""
    pixels = crop(data, max_pixels=max_pixels, gate=gate, jpeg_draft=jpeg_draft)
    return normalize(torch.from_numpy(pixels).unsqueeze(0))[0]
