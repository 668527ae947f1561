"""The CUDA engine's contract and routes: no mutation of the caller's network, uint8 input,
fused SA (Triton, inductor) in fp16/bf16 against the fp32 reference, graphs per batch size,
``auto`` measuring the routes, GPU JPEG decode fidelity (skipped without a package).

Skipped without a CUDA device. Tolerances, as a fraction of the fp32 reference's logit scale,
set from measured error sizes with headroom (SANet-50 seed 12 on the 4 crops below):
- fp16: 9.8e-4 when the folded network runs in fp16 on the CPU (EPYC), 7.2e-4 on an H200;
  the bound is 4e-3 (4x the larger). A real fault (channel order, normalisation, a wrong
  graph replayed) moves logits by a sizeable fraction of the scale, far above it.
- bf16 (8 mantissa bits): 6.6e-3 on the CPU, 2.7e-2 on an H200; the bound is 8e-2 (3x).
Top-1: the reference's top-1 margins here are 3.5e-2 to 5.8e-2 of the scale. fp16's error is
far below them, so its top-1 must be the reference's; bf16's error can reach half a margin,
so the class it picks must score within twice its measured error (5.4e-2 of the scale) of
the reference's best.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from model import build_engine, compile_model, fold_model
from model.cuda import CudaRunner
from model.engine import cuda_candidates
from model.preprocess import normalize
from testing.checkpoints import random_net

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOL = {"fp16": 4e-3, "bf16": 8e-2}
#: largest logit error measured per precision (fraction of the scale; the docstring's table)
MEASURED = {"fp16": 9.8e-4, "bf16": 2.7e-2}
needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed"
)


@pytest.fixture(autouse=True)
def _strict_fp32() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(scope="module")
def net() -> nn.Module:
    return random_net("sanet50", seed=12)


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    gen = torch.Generator().manual_seed(4)
    return torch.randint(0, 256, (4, 224, 224, 3), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module")
def reference(net: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """fp32 CPU logits of the folded network for ``crops``."""
    with torch.inference_mode():
        return fold_model(net)(normalize(crops))  # type: ignore[arg-type]


def _rel(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out - ref).abs().max().item() / ref.abs().max().item()


def assert_top1(out: torch.Tensor, ref: torch.Tensor, precision: str) -> None:
    """fp16: the reference's top-1. bf16: a class the reference scores within twice bf16's
    measured error of its best (a rounding-sized error may swap near-ties, not more)."""
    picked = out.argmax(1)
    if precision != "bf16":
        assert torch.equal(picked, ref.argmax(1))
        return
    slack = 2 * MEASURED[precision] * ref.abs().max()
    best = ref.max(1).values
    assert bool((ref.gather(1, picked[:, None])[:, 0] >= best - slack).all())


@pytest.mark.parametrize("backend", ["eager", "torchscript", "triton", "inductor"])
def test_caller_untouched(backend: str) -> None:
    if backend in ("triton", "inductor") and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    caller = random_net("sanet_tiny", seed=1).train()
    before = {k: v.clone() for k, v in caller.state_dict().items()}
    compiled = compile_model(caller, backend, device="cuda", precision="fp16")
    compiled(torch.zeros(1, 224, 224, 3, dtype=torch.uint8))
    assert all(m.training for m in caller.modules())
    for key, value in caller.state_dict().items():
        assert value.device.type == "cpu" and value.dtype == before[key].dtype, key
        assert torch.equal(value, before[key]), key


def test_uint8_path_fp32(net: nn.Module, crops: torch.Tensor, reference: torch.Tensor) -> None:
    compiled = compile_model(net, "eager", device="cuda")
    from_uint8 = compiled(crops)
    from_float = compiled(normalize(crops))
    assert _rel(from_uint8, from_float) <= 1e-5  # the same normalisation, on the device
    assert _rel(from_uint8, reference) <= 1e-4
    assert isinstance(compiled.run, CudaRunner)
    assert {(4, torch.uint8), (4, torch.float32)} <= set(compiled.run.captured)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("backend", [pytest.param("triton", marks=needs_triton), "eager"])
def test_reduced_precision_routes(
    net: nn.Module, crops: torch.Tensor, reference: torch.Tensor, backend: str, precision: str
) -> None:
    compiled = compile_model(net, backend, device="cuda", precision=precision)
    for bsz in (1, 4, 1):  # graphs per batch size; the second batch-1 call replays
        out = compiled(crops[:bsz])
        assert out.dtype == torch.float32 and out.device.type == "cpu"
        assert _rel(out, reference[:bsz]) <= TOL[precision]
        assert_top1(out, reference[:bsz], precision)
    assert isinstance(compiled.run, CudaRunner)
    assert set(compiled.run.captured) == {(1, torch.uint8), (4, torch.uint8)}


@needs_triton
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_inductor_route(crops: torch.Tensor, precision: str) -> None:
    """On the tiny network: an inductor compile of SANet-50 per dtype would take most of the
    tier's two minutes; the bench compiles SANet-50 (bench/gpu_model.py)."""
    tiny = random_net("sanet_tiny", seed=6)
    with torch.inference_mode():
        reference = fold_model(tiny)(normalize(crops))  # type: ignore[arg-type]
    compiled = compile_model(tiny, "inductor", device="cuda", precision=precision)
    out = compiled(crops)
    assert _rel(out, reference) <= TOL[precision]
    assert_top1(out, reference, precision)


def test_auto_measures_the_routes(tmp_path) -> None:
    tiny = random_net("sanet_tiny", seed=2)
    first = build_engine(
        tiny, "auto", device="cuda", precision="fp16", cache_dir=tmp_path, max_batch_size=4
    )
    assert first.report.backend in cuda_candidates() and first.report.device == "cuda"
    if len(cuda_candidates()) > 1:
        assert first.report.decision == "measured"
        assert set(first.report.timings_ms) == set(cuda_candidates())
        again = build_engine(
            tiny, "auto", device="cuda", precision="fp16", cache_dir=tmp_path, max_batch_size=4
        )
        assert again.report.decision == "cached"
        assert again.report.backend == first.report.backend
