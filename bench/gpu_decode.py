"""An experiment, not in the service: decode + resize + crop a batch of JPEG bodies on the GPU
(measured by ``bench/tests/test_gpu_decode_cuda.py``; docs/model.md says what wiring it in takes).

Packages, first found wins: nvImageCodec (``nvidia.nvimgcodec``, PyPI
``nvidia-nvimgcodec-cu12``/``-cu13``), TorchCodec (>= 0.16, ``torchcodec.decoders.decode_jpeg``)
and torchvision (``torchvision.io.decode_jpeg(device="cuda")``, deprecated since 0.29). None is
bit-exact with libjpeg/Pillow and the resize is torch's antialiased bilinear, so like INT8 it
passes a fidelity gate before it is used: top-1 agreement and the largest probability
difference against the CPU transform (:func:`model.preprocess.crop`) on held-out images.

Bodies the GPU path does not take as they are (not JPEG, CMYK, an EXIF orientation other than
1) go through the CPU transform, so the answer never depends on the path.

Modes: ``off``; ``on`` (no GPU or no package: :class:`~model.errors.GpuDecodeError` naming
what is missing); ``auto`` (off, with the reason, when either is missing; else on once the
fidelity gate passes and the GPU measures faster than the CPU path on the held-out images).
"""

from __future__ import annotations

import importlib.util
import io
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from model.errors import EngineError
from model.preprocess import CROP, RESIZE, crop, resized_size

log = logging.getLogger(__name__)


class GpuDecodeError(EngineError):
    """GPU JPEG decoding was asked for but cannot run here (no GPU, no decoder package) or
    its output is too far from the CPU transform (the fidelity gate refused it)."""


MODES = ("auto", "on", "off")
#: (name shown to users, importable module, what to pip install)
PACKAGES = (
    ("nvimgcodec", "nvidia.nvimgcodec", "nvidia-nvimgcodec-cu12 or nvidia-nvimgcodec-cu13"),
    ("torchcodec", "torchcodec", "torchcodec>=0.16"),
    ("torchvision", "torchvision", "torchvision (the GPU host's image has it)"),
)
MIN_AGREEMENT = 0.99
MAX_PROB_DIFF = 0.05
JPEG_SUFFIXES = (".jpg", ".jpeg")

#: JPEG bodies -> decoded full-size images, uint8 (3, H, W) RGB on the decode device
Decode = Callable[[Sequence[bytes]], list[torch.Tensor]]


@dataclass(frozen=True)
class DecodeChoice:
    """What a ``gpu_decode`` mode resolved to, and why (logged, shown in ``/v1/models``)."""

    mode: str
    enabled: bool
    package: str | None
    reason: str


def find_package() -> str | None:
    """The first GPU JPEG decoder package installed, by :data:`PACKAGES` order."""
    for name, module, _ in PACKAGES:
        try:
            if importlib.util.find_spec(module) is not None:
                return name
        except ModuleNotFoundError:  # a namespace parent (nvidia) without the child
            continue
    return None


def _missing(device: str, cuda: bool, package: str | None) -> list[str]:
    missing = []
    if device != "cuda" or not cuda:
        where = "torch sees no CUDA device" if not cuda else f"the model runs on {device}"
        missing.append(f"a CUDA device ({where})")
    if package is None:
        wanted = "; ".join(pip for _, _, pip in PACKAGES)
        missing.append(f"a GPU JPEG decoder package (pip install one of: {wanted})")
    return missing


def resolve_mode(
    mode: str, device: str, *, cuda: bool | None = None, package: str | None = ""
) -> DecodeChoice:
    """Resolve ``mode`` for a model on ``device``. ``cuda``/``package`` default to what this
    machine has (tests pass them). ``on`` without what it needs raises GpuDecodeError;
    ``auto`` with both present is ``enabled`` pending :func:`gate` (the caller runs it)."""
    if mode not in MODES:
        raise GpuDecodeError(f"unknown gpu_decode mode {mode!r}; use {', '.join(MODES)}")
    if mode == "off":
        return DecodeChoice(mode, False, None, "off (SANET_GPU_DECODE=off)")
    has_cuda = torch.cuda.is_available() if cuda is None else cuda
    pkg = find_package() if package == "" else package
    missing = _missing(device, has_cuda, pkg)
    if missing and mode == "on":
        raise GpuDecodeError("SANET_GPU_DECODE=on needs " + " and ".join(missing))
    if missing:
        return DecodeChoice(mode, False, pkg, "off: no " + " and no ".join(missing))
    return DecodeChoice(mode, True, pkg, f"{pkg} on cuda")


def decoder(package: str, device: str = "cuda") -> Decode:
    """The batch decode function of ``package`` (JPEG bytes -> uint8 (3, H, W) on device)."""
    if package == "nvimgcodec":
        from nvidia import nvimgcodec

        dec = nvimgcodec.Decoder()

        def nvimg(datas: Sequence[bytes]) -> list[torch.Tensor]:
            images = dec.decode(list(datas))
            return [torch.as_tensor(im, device=device).permute(2, 0, 1) for im in images]

        return nvimg
    if package == "torchcodec":
        from torchcodec.decoders import decode_jpeg as codec_jpeg

        return lambda datas: [codec_jpeg(_bytes(d), mode="RGB", device=device) for d in datas]
    if package == "torchvision":
        from torchvision.io import ImageReadMode
        from torchvision.io import decode_jpeg as tv_jpeg

        def tv(datas: Sequence[bytes]) -> list[torch.Tensor]:
            out = tv_jpeg([_bytes(d) for d in datas], mode=ImageReadMode.RGB, device=device)
            return list(out)

        return tv
    raise GpuDecodeError(f"unknown GPU JPEG decoder package {package!r}")


def _bytes(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def pillow_decode(datas: Sequence[bytes]) -> list[torch.Tensor]:
    """A CPU :data:`Decode` through Pillow (no resize): the reference for the resize math."""
    out = []
    for data in datas:
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        out.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    return out


def gpu_resize_crop(image: torch.Tensor, resize: int = RESIZE, size: int = CROP) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (size, size, 3): shorter side to ``resize`` (bilinear,
    antialiased, as Pillow's), then the centered crop, on ``image``'s device."""
    _, h, w = image.shape
    new_w, new_h = resized_size(w, h, resize)
    x = image.unsqueeze(0).float()
    if (new_w, new_h) != (w, h):
        x = torch.nn.functional.interpolate(
            x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False
        )
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    x = x[0, :, top : top + size, left : left + size]
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def gpu_ready(data: bytes) -> bool:
    """True for a JPEG body the GPU path takes as it is (RGB/grey, no EXIF rotation)."""
    if data[:2] != b"\xff\xd8":
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = img.getexif().get(0x0112, 1)
            return img.format == "JPEG" and img.mode in ("RGB", "L") and orientation == 1
    except Exception:  # anything odd goes the CPU way, which reports it properly
        return False


def decode_batch(datas: Sequence[bytes], decode: Decode) -> torch.Tensor:
    """JPEG bodies -> uint8 (B, 224, 224, 3) on the decode device; the bodies the GPU path
    does not take go through :func:`model.preprocess.crop` on CPU."""
    ready = [i for i, d in enumerate(datas) if gpu_ready(d)]
    decoded = dict(zip(ready, decode([datas[i] for i in ready]), strict=True)) if ready else {}
    rows = []
    for i, data in enumerate(datas):
        if i in decoded:
            rows.append(gpu_resize_crop(decoded[i]))
        else:
            rows.append(torch.from_numpy(crop(data)))
    device = rows[0].device if decoded else torch.device("cpu")
    return torch.stack([r.to(device) for r in rows])


@dataclass
class Fidelity:
    """GPU decode against the CPU transform on held-out images (like INT8's report)."""

    agreement: float
    max_prob_diff: float
    images: int
    min_agreement: float
    max_allowed_diff: float
    gpu_ms_per_image: float | None = None
    cpu_ms_per_image: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[bytes],
    decode: Decode,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_prob_diff: float = MAX_PROB_DIFF,
) -> Fidelity:
    """Compare ``model``'s answers on GPU-decoded and CPU-transformed ``images``; refuse
    (GpuDecodeError) below ``min_agreement`` top-1 agreement or above ``max_prob_diff``."""
    if not images:
        raise GpuDecodeError("the GPU decode fidelity gate needs held-out JPEG images")
    cpu = torch.stack([torch.from_numpy(crop(d)) for d in images])
    gpu = decode_batch(images, decode).cpu()
    with torch.inference_mode():
        ref = torch.softmax(model(cpu).float(), dim=1)
        got = torch.softmax(model(gpu).float(), dim=1)
    agreement = (ref.argmax(1) == got.argmax(1)).float().mean().item()
    diff = (ref - got).abs().max().item()
    report = Fidelity(agreement, diff, len(images), min_agreement, max_prob_diff)
    log.info("gpu decode fidelity: %s", report.as_dict())
    if agreement < min_agreement or diff > max_prob_diff:
        raise GpuDecodeError(
            f"GPU JPEG decode agrees with the CPU transform on top-1 for {agreement:.1%} of "
            f"{len(images)} held-out images (need {min_agreement:.1%}) with a largest "
            f"probability difference of {diff:.4f} (allowed {max_prob_diff}): decode on CPU"
        )
    return report


def time_paths(images: Sequence[bytes], decode: Decode, rounds: int = 3) -> tuple[float, float]:
    """(GPU, CPU) median ms per image for the whole decode + resize + crop of ``images``."""
    gpu, cpu = [], []
    for _ in range(rounds + 1):  # the first round warms both up and is dropped
        start = time.perf_counter()
        out = decode_batch(images, decode)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        gpu.append(time.perf_counter() - start)
        start = time.perf_counter()
        for data in images:
            crop(data)
        cpu.append(time.perf_counter() - start)
    per = 1000 / len(images)
    return statistics.median(gpu[1:]) * per, statistics.median(cpu[1:]) * per


def held_out_jpegs(folder: str | Path) -> list[bytes]:
    """The JPEG files of ``folder`` (name order) as bytes: the images the gate compares on."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in JPEG_SUFFIXES)
    return [p.read_bytes() for p in files]


@dataclass
class GpuDecodeSetup:
    """The resolved setting: ``decode`` is None when JPEG bodies decode on CPU."""

    choice: DecodeChoice
    decode: Decode | None = None
    fidelity: Fidelity | None = None


def configure(
    mode: str,
    device: str,
    model: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[bytes],
    **gate_args: float,
) -> GpuDecodeSetup:
    """Resolve ``mode`` at start: find the package, run the fidelity gate on ``images`` and,
    for ``auto``, keep the GPU path only if it also measures faster than the CPU path.
    ``on`` raises GpuDecodeError when it cannot run or the gate refuses it."""
    choice = resolve_mode(mode, device)
    if not choice.enabled or choice.package is None:
        return GpuDecodeSetup(choice)
    decode = decoder(choice.package, device)
    try:
        report = gate(model, images, decode, **gate_args)
    except GpuDecodeError as exc:
        if mode == "on":
            raise
        return GpuDecodeSetup(DecodeChoice(mode, False, choice.package, f"off: {exc}"))
    report.gpu_ms_per_image, report.cpu_ms_per_image = time_paths(images, decode)
    if mode == "auto" and report.gpu_ms_per_image >= report.cpu_ms_per_image:
        why = f"off: GPU {report.gpu_ms_per_image:.2f} ms/image, CPU {report.cpu_ms_per_image:.2f}"
        return GpuDecodeSetup(DecodeChoice(mode, False, choice.package, why), None, report)
    return GpuDecodeSetup(choice, decode, report)
