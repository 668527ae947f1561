"""Preprocessing: formats, modes, EXIF, geometry, normalisation, and hostile inputs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, features

from model import ImageDecodeError, ImageTooLargeError, preprocess
from model.preprocess import MEAN, STD, crop, resize_crop, to_tensor
from testing.ci import require_module, skip_or_fail
from testing.paths import SAMPLES

COFFEE = (SAMPLES / "coffee.jpg").read_bytes()


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo() -> Image.Image:
    return Image.open(io.BytesIO(COFFEE)).convert("RGB")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_lossless_formats_match_png(fmt: str) -> None:
    img = photo()
    kw = {"lossless": True} if fmt == "WEBP" else {}
    ref = preprocess(encode(img, "PNG"))
    out = preprocess(encode(img, fmt, **kw))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize(
    ("fmt", "options", "levels"),
    [
        # full quality without chroma subsampling: only the RGB <-> YUV rounding remains
        ("AVIF", {"quality": 100, "subsampling": "4:4:4"}, 2),
        # lossless HEIC (RGB stored as is, identity matrix): exact
        ("HEIF", {"quality": -1, "chroma": 444, "matrix_coefficients": 0}, 0),
    ],
)
def test_avif_and_heic_crops_match_the_png_crop(fmt: str, options: dict, levels: int) -> None:
    if fmt == "HEIF":
        require_module("pillow_heif", "a core dependency: pip install -e .").register_heif_opener()
    elif not features.check("avif"):
        skip_or_fail("this Pillow has no AVIF codec (Pillow >= 11.3 wheels have it)")
    data = encode(photo(), fmt, **options)
    assert Image.open(io.BytesIO(data)).format == fmt
    ref = crop(encode(photo(), "PNG")).astype(np.int16)
    out = crop(data).astype(np.int16)
    assert out.shape == (224, 224, 3)
    assert np.abs(out - ref).max() <= levels  # swapped channels or a flip: 40-70 on average


def test_jpeg_and_gif_first_frame() -> None:
    assert preprocess(COFFEE).shape == (3, 224, 224)
    red, blue = Image.new("RGB", (300, 260), (255, 0, 0)), Image.new("RGB", (300, 260), (0, 0, 255))
    gif = encode(red, "GIF", save_all=True, append_images=[blue])
    out = preprocess(gif)
    expected_red = (1.0 - MEAN[0]) / STD[0]
    assert out[0].mean().item() == pytest.approx(expected_red, abs=0.02)


def test_normalisation_values() -> None:
    out = preprocess(encode(Image.new("RGB", (256, 256), (255, 0, 128)), "PNG"))
    expected = [(1.0 - MEAN[0]) / STD[0], -MEAN[1] / STD[1], (128 / 255 - MEAN[2]) / STD[2]]
    for c in range(3):
        assert torch.allclose(out[c], torch.full((224, 224), expected[c]), atol=1e-5)


@pytest.mark.parametrize(
    ("size", "resized", "box"),
    [
        ((500, 375), (341, 256), (58, 16, 282, 240)),
        ((375, 500), (256, 341), (16, 58, 240, 282)),
        ((1000, 255), (1003, 256), (390, 16, 614, 240)),
        ((256, 256), (256, 256), (16, 16, 240, 240)),
    ],
)
def test_resize_and_crop_geometry(size, resized, box) -> None:
    gen = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=gen, dtype=torch.uint8)
    img = Image.frombytes("RGB", size, pixels.numpy().tobytes())
    expected = np.asarray(img.resize(resized, Image.Resampling.BILINEAR).crop(box), np.int16)
    out = np.asarray(resize_crop(img), np.int16)
    assert out.shape == expected.shape == (224, 224, 3)
    # only the crop is resampled: the same filter, positions equal up to float rounding
    assert np.abs(out - expected).max() <= 1
    assert (out != expected).mean() < 0.3


def test_to_tensor_is_the_normalisation_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (224, 224, 3), generator=gen, dtype=torch.uint8)
    img = Image.frombytes("RGB", (224, 224), pixels.numpy().tobytes())
    mean, std = torch.tensor(MEAN).reshape(3, 1, 1), torch.tensor(STD).reshape(3, 1, 1)
    expected = (pixels.permute(2, 0, 1).float() / 255 - mean) / std
    out = to_tensor(img)
    assert out.shape == (3, 224, 224) and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=0)


def test_exif_orientation_applied() -> None:
    img = photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    tagged = encode(img, "JPEG", quality=95, exif=exif.tobytes())
    upright = encode(img.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95)
    diff = (preprocess(tagged) - preprocess(upright)).abs().mean().item()
    unrotated = (preprocess(tagged) - preprocess(encode(img, "JPEG", quality=95))).abs().mean()
    assert diff < 0.05 < unrotated.item()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    img = photo().convert(mode) if mode != "I;16" else photo().convert("L").convert("I;16")
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    out = preprocess(encode(img, fmt))
    assert out.shape == (3, 224, 224) and torch.isfinite(out).all()


def test_sixteen_bit_grey_is_scaled() -> None:
    img = Image.new("I;16", (256, 256), 65535)
    out = preprocess(encode(img, "PNG"))
    assert out[0].mean().item() == pytest.approx(
        (255 / 256 * 255 / 255 - MEAN[0]) / STD[0], abs=0.02
    )


def test_transparency_composited_on_white() -> None:
    out = preprocess(encode(Image.new("RGBA", (300, 300), (0, 0, 0, 0)), "PNG"))
    assert out[1].mean().item() == pytest.approx((1.0 - MEAN[1]) / STD[1], abs=1e-4)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_pixel_limit_checked_from_header() -> None:
    bomb = _png_header_only(40_000, 40_000)  # 1.6 gigapixels announced in a tiny file
    assert len(bomb) < 200
    with pytest.raises(ImageTooLargeError) as err:
        preprocess(bomb, max_pixels=50_000_000)
    assert err.value.pixels == 1_600_000_000
    with pytest.raises(ImageTooLargeError):
        preprocess(COFFEE, max_pixels=1000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        COFFEE[: len(COFFEE) // 2],
        COFFEE[:20],
        b"%PDF-1.4 fake",
        _png_header_only(300, 300),
    ],
    ids=["empty", "text", "truncated-jpeg", "header-only-jpeg", "pdf", "png-no-data"],
)
def test_undecodable_inputs_raise_typed_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        preprocess(data)


def _large_jpeg(size: tuple[int, int]) -> bytes:
    return encode(photo().resize(size, Image.Resampling.LANCZOS), "JPEG", quality=92)


def test_jpeg_draft_is_opt_in_and_close_to_the_exact_transform() -> None:
    data = _large_jpeg((2400, 1600))
    exact = preprocess(data)
    drafted = preprocess(data, jpeg_draft=True)
    assert torch.equal(preprocess(data, jpeg_draft=False), exact)
    levels = (exact - drafted).abs() * 255 * min(STD)  # at most this many 8-bit levels
    assert 0 < levels.mean().item() < 2.0
    assert levels.max().item() < 40


def test_jpeg_draft_decodes_fewer_pixels_but_never_below_the_resize() -> None:
    large, png, small = _large_jpeg((2400, 1600)), encode(photo(), "PNG"), photo().size
    seen: list[tuple[int, int]] = []
    original = Image.Image.load

    def spy(img: Image.Image):  # type: ignore[no-untyped-def]
        out = original(img)
        seen.append(img.size)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image.Image, "load", spy)
        preprocess(large, jpeg_draft=True)
        assert max(seen) == (600, 400)  # 1/4 of 2400 x 1600, still >= 384 x 256
        seen.clear()
        preprocess(png, jpeg_draft=True)  # not a JPEG: decoded at full size
        assert max(seen) == small


def test_normalize_matches_the_level_table_bit_for_bit() -> None:
    from model.preprocess import LEVELS, normalize

    levels = torch.arange(256, dtype=torch.uint8).view(1, 16, 16, 1).expand(2, 16, 16, 3)
    out = normalize(levels.contiguous())
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    for c in range(3):
        assert torch.equal(out[1, c].flatten(), torch.from_numpy(LEVELS[c]))


def test_crop_writes_into_the_callers_buffer() -> None:
    from model.preprocess import crop, normalize

    slot = np.zeros((224, 224, 3), dtype=np.uint8)
    got = crop(COFFEE, out=slot)
    assert got is slot and slot.any()
    assert torch.equal(normalize(torch.from_numpy(slot)[None])[0], preprocess(COFFEE))
