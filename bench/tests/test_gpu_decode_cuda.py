"""GPU JPEG decode on a real GPU: fidelity against the CPU transform on the shipped samples.

Skips without a decoder package (nvImageCodec, TorchCodec or torchvision).
"""

from __future__ import annotations

import logging

import pytest
import torch

from bench.gpu_decode import (
    configure,
    decode_batch,
    decoder,
    find_package,
    gate,
    held_out_jpegs,
    resolve_mode,
    time_paths,
)
from model import compile_model
from testing.checkpoints import separating_net
from testing.paths import SAMPLES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def package() -> str:
    found = find_package()
    if found is None:
        pytest.skip("no GPU JPEG decoder package (nvimgcodec, torchcodec, torchvision)")
    return found


def test_on_resolves(package: str) -> None:
    choice = resolve_mode("on", "cuda")
    assert choice.enabled and choice.package == package


def test_fidelity_and_speed(package: str) -> None:
    jpegs = held_out_jpegs(SAMPLES)
    decode = decoder(package)
    batch = decode_batch(jpegs, decode)
    assert batch.is_cuda and batch.dtype == torch.uint8 and batch.shape[1:] == (224, 224, 3)
    model = compile_model(separating_net(seed=2), "eager", device="cuda")
    report = gate(model, jpegs, decode)
    report.gpu_ms_per_image, report.cpu_ms_per_image = time_paths(jpegs, decode)
    log.warning("gpu decode (%s): %s", package, report.as_dict())
    assert report.agreement >= report.min_agreement
    setup = configure("on", "cuda", model, jpegs)  # the start-up path: gate passed, in use
    assert setup.decode is not None and setup.fidelity is not None
