"""The CUDA path: parity, reduced precision, CUDA graphs per batch size.

Skipped without a CUDA device (outside CI's required set: CI machines have no GPU).
"""

from __future__ import annotations

import pytest
import torch

from model import compile_model
from model.cuda import CudaRunner
from testing.checkpoints import random_net
from tests.cuda.test_cuda_routes import TOL, assert_top1

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _strict_fp32() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return random_net("sanet50", seed=11)


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_fp32_parity_with_graphs(net: torch.nn.Module, backend: str) -> None:
    x = torch.randn(4, 3, 224, 224)
    with torch.inference_mode():
        ref = net(x)
    compiled = compile_model(net, backend, device="cuda")
    assert isinstance(compiled.run, CudaRunner) and compiled.device == "cuda"
    for bsz in (1, 4, 1):  # second batch-1 call replays the captured graph
        out = compiled(x[:bsz])
        assert out.device.type == "cpu" and out.dtype == torch.float32
        assert (out - ref[:bsz]).abs().max().item() <= 1e-3
    assert set(compiled.run.captured) == {(1, torch.float32), (4, torch.float32)}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_close(net: torch.nn.Module, precision: str) -> None:
    """Logits within the bounds of ``tests/cuda/test_cuda_routes.py`` (its docstring says
    where they come from)."""
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = net(x)
    compiled = compile_model(net, "torchscript", device="cuda", precision=precision)
    out = compiled(x)
    assert (out - ref).abs().max().item() <= TOL[precision] * ref.abs().max().item()
    assert_top1(out, ref, precision)


def test_auto_device_prefers_cuda(net: torch.nn.Module) -> None:
    compiled = compile_model(net, "auto", device="auto")
    assert compiled.device == "cuda" and compiled.backend == "torchscript"
