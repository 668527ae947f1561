"""Backends and folding: parity with the eager network at fp32 (<= 1e-4 max |diff|)."""

from __future__ import annotations

import pytest
import torch

from model import compile_model, fold_model
from model.compile import resolve_backend
from model.errors import (
    UnknownBackendError,
    UnknownDeviceError,
    UnknownPrecisionError,
)
from model.folding import FoldedSANet
from model.fused import load_fused_sa
from testing.checkpoints import random_net
from testing.ci import skip_or_fail

ATOL = 1e-4


def _eager(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    return random_net("sanet_tiny", seed=3)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_folding_is_exact(tiny: torch.nn.Module, batch: torch.Tensor) -> None:
    folded = fold_model(tiny)  # type: ignore[arg-type]
    assert isinstance(folded, FoldedSANet)
    names = [n for n, _ in folded.named_modules()]
    assert not any(n.endswith(("bn1", "bn2", "bn3", "gn")) for n in names)
    diff = (_eager(folded, batch) - _eager(tiny, batch)).abs().max().item()
    assert diff <= ATOL


@pytest.mark.parametrize("backend", ["eager", "torchscript", "onnxruntime"])
@pytest.mark.parametrize("fold", [True, False])
def test_backend_parity(
    tiny: torch.nn.Module, batch: torch.Tensor, backend: str, fold: bool
) -> None:
    compiled = compile_model(tiny, backend, fold=fold)
    assert (compiled.backend, compiled.folded, compiled.num_classes) == (backend, fold, 1000)
    out = compiled(batch)
    assert out.shape == (3, 1000) and out.dtype == torch.float32
    assert (out - _eager(tiny, batch)).abs().max().item() <= ATOL
    single = compiled(batch[:1])  # dynamic batch axis
    assert (single - _eager(tiny, batch[:1])).abs().max().item() <= ATOL


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime"])
def test_sanet50_parity(batch: torch.Tensor, backend: str) -> None:
    net = random_net("sanet50", seed=5)
    compiled = compile_model(net, backend)
    diff = (compiled(batch[:2]) - _eager(net, batch[:2])).abs().max().item()
    assert diff <= ATOL


def test_torchscript_is_frozen_script(tiny: torch.nn.Module) -> None:
    compiled = compile_model(tiny, "torchscript")
    assert isinstance(compiled.run, torch.jit.ScriptModule)
    assert not any(True for _ in compiled.run.parameters())  # frozen: weights are constants


def test_onnx_export_cache_reused(tiny: torch.nn.Module, batch: torch.Tensor, tmp_path) -> None:
    (tmp_path / "abc-v0.onnx").write_bytes(b"an export of an older version")
    first = compile_model(tiny, "onnxruntime", cache_dir=tmp_path, cache_key="abc")
    files = list(tmp_path.glob("abc-*.onnx"))  # the stale version is gone
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    second = compile_model(tiny, "onnxruntime", cache_dir=tmp_path, cache_key="abc")
    assert files[0].stat().st_mtime_ns == stamp
    torch.testing.assert_close(first(batch), second(batch))


def test_auto_and_bad_names(tiny: torch.nn.Module) -> None:
    assert compile_model(tiny, "auto", device="cpu").backend == "onnxruntime"
    with pytest.raises(UnknownBackendError, match="tensorrt"):
        compile_model(tiny, "tensorrt")
    with pytest.raises(UnknownPrecisionError, match="fp8"):
        compile_model(tiny, "torchscript", precision="fp8")
    with pytest.raises(UnknownPrecisionError, match="fp16"):
        compile_model(tiny, "torchscript", precision="fp16", device="cpu")
    with pytest.raises(UnknownDeviceError, match="tpu"):
        compile_model(tiny, "torchscript", device="tpu")
    with pytest.raises(UnknownBackendError, match="cpu only"):
        resolve_backend("onnxruntime", "cuda")


def test_cuda_without_gpu_is_named(tiny: torch.nn.Module) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(UnknownDeviceError, match="no CUDA device"):
        compile_model(tiny, "eager", device="cuda")


@pytest.mark.parametrize("backend", ["eager", "torchscript"])
def test_unfused_folded_parity(tiny: torch.nn.Module, batch: torch.Tensor, backend: str) -> None:
    compiled = compile_model(tiny, backend, fused=False)
    assert not compiled.fused
    assert (compiled(batch) - _eager(tiny, batch)).abs().max().item() <= ATOL


def test_fused_kernel_parity_sanet50(batch: torch.Tensor) -> None:
    if not load_fused_sa():
        skip_or_fail("the fused SA kernel did not build (C++ compiler and ninja needed)")
    net = random_net("sanet50", seed=9)
    compiled = compile_model(net, "torchscript", fused=True)
    assert compiled.fused
    diff = (compiled(batch[:2]) - _eager(net, batch[:2])).abs().max().item()
    assert diff <= ATOL
    # the kernel falls back to the unfused ops for inputs it does not take
    from model.folding import FoldedShuffleAttention, FusedShuffleAttention
    from model.sa_layer import ShuffleAttention

    sa = ShuffleAttention(64, groups=4)
    with torch.no_grad():
        for p in sa.parameters():
            p.uniform_(-1.5, 1.5)
    plain = FoldedShuffleAttention(sa, 64)
    fused = FusedShuffleAttention.from_folded(plain)
    y = torch.randn(2, 64, 9, 9).contiguous(memory_format=torch.channels_last)
    identity = torch.randn(2, 64, 9, 9)
    torch.testing.assert_close(fused(y, identity.clone()), plain(y, identity.clone()))
    torch.testing.assert_close(
        fused(y.contiguous(), identity.clone()),
        plain(y.contiguous(), identity.clone()),
        atol=1e-5,
        rtol=1e-5,
    )
