"""GPU JPEG decode without a GPU: mode resolution, refusals that name what is missing, and
the resize/crop math and fidelity gate run on CPU with Pillow as the decoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bench.gpu_decode import (
    GpuDecodeError,
    decode_batch,
    find_package,
    gate,
    gpu_resize_crop,
    held_out_jpegs,
    pillow_decode,
    resolve_mode,
)
from model import ModelError, compile_model
from model.preprocess import crop
from testing.checkpoints import random_net, separate_
from testing.paths import SAMPLES


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return held_out_jpegs(SAMPLES)


@pytest.fixture(scope="module")
def separating() -> object:
    """The tiny network with a scaled fc, so that different photos get different answers."""
    return compile_model(separate_(random_net("sanet_tiny", seed=2)), "eager")


def test_off_is_off() -> None:
    choice = resolve_mode("off", "cuda", cuda=True, package="torchvision")
    assert not choice.enabled and "off" in choice.reason


@pytest.mark.parametrize(
    ("cuda", "package", "device", "missing"),
    [
        (False, "torchvision", "cuda", "CUDA device"),
        (True, None, "cuda", "nvidia-nvimgcodec"),
        (True, "nvimgcodec", "cpu", "the model runs on cpu"),
    ],
)
def test_on_names_what_is_missing(
    cuda: bool, package: str | None, device: str, missing: str
) -> None:
    with pytest.raises(GpuDecodeError, match=missing) as info:
        resolve_mode("on", device, cuda=cuda, package=package)
    assert isinstance(info.value, ModelError)
    auto = resolve_mode("auto", device, cuda=cuda, package=package)
    assert not auto.enabled and missing in auto.reason


def test_auto_with_both_is_enabled_pending_the_gate() -> None:
    choice = resolve_mode("auto", "cuda", cuda=True, package="nvimgcodec")
    assert choice.enabled and choice.package == "nvimgcodec"


def test_this_machine(jpegs: list[bytes]) -> None:
    """What the real detection says here: no GPU means on is refused, auto is off."""
    if torch.cuda.is_available() and find_package() is not None:
        pytest.skip("this machine can decode on the GPU")
    with pytest.raises(GpuDecodeError, match="needs"):
        resolve_mode("on", "cuda")
    assert not resolve_mode("auto", "cuda").enabled


def test_unknown_mode() -> None:
    with pytest.raises(GpuDecodeError, match="sometimes"):
        resolve_mode("sometimes", "cuda")


def test_resize_crop_is_close_to_pillow(jpegs: list[bytes]) -> None:
    for data, decoded in zip(jpegs, pillow_decode(jpegs), strict=True):
        ours = gpu_resize_crop(decoded).numpy().astype(np.int16)
        ref = crop(data).astype(np.int16)
        assert ours.shape == ref.shape == (224, 224, 3)
        diff = np.abs(ours - ref)
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 3


def test_non_jpeg_goes_the_cpu_way(jpegs: list[bytes]) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpegs[0])).save(buf, format="PNG")
    png = buf.getvalue()
    batch = decode_batch([jpegs[1], png], pillow_decode)
    assert batch.shape == (2, 224, 224, 3) and batch.dtype == torch.uint8
    assert np.array_equal(batch[1].numpy(), crop(png))


def test_gate_passes_a_faithful_decode(separating: object, jpegs: list[bytes]) -> None:
    report = gate(separating, jpegs, pillow_decode)  # type: ignore[arg-type]
    assert report.agreement == 1.0 and report.images == len(jpegs)
    assert report.max_prob_diff <= report.max_allowed_diff


def test_gate_refuses_an_unfaithful_decode(separating: object, jpegs: list[bytes]) -> None:
    def negative(datas: object) -> list[torch.Tensor]:
        return [255 - img for img in pillow_decode(datas)]  # type: ignore[arg-type]

    with pytest.raises(GpuDecodeError, match="held-out images"):
        gate(separating, jpegs, negative)  # type: ignore[arg-type]
    with pytest.raises(GpuDecodeError, match="needs held-out"):
        gate(separating, [], pillow_decode)  # type: ignore[arg-type]


def test_configure_without_a_gpu(separating: object, jpegs: list[bytes]) -> None:
    if torch.cuda.is_available() and find_package() is not None:
        pytest.skip("this machine can decode on the GPU")
    from bench.gpu_decode import configure

    off = configure("auto", "cuda", separating, jpegs)  # type: ignore[arg-type]
    assert off.decode is None and not off.choice.enabled and "CUDA device" in off.choice.reason
    assert configure("off", "cuda", separating, jpegs).decode is None  # type: ignore[arg-type]
    with pytest.raises(GpuDecodeError, match="needs"):
        configure("on", "cuda", separating, jpegs)  # type: ignore[arg-type]
