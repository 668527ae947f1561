"""The GPU routes of folded SA, checked on CPU: the Triton kernels under TRITON_INTERPRET=1
(on the GPU itself where there is one) and torch.compile (inductor) of the folded network.

Reference: the eager folded network in fp32. Without triton the Triton tests skip, or fail
under CI=true.
"""

from __future__ import annotations

import importlib.util
import os

import torch

if not torch.cuda.is_available():  # before triton is imported: kernels run on CPU tensors
    os.environ["TRITON_INTERPRET"] = "1"

import pytest

from model import compile_model, fold_model
from model.folding import FoldedShuffleAttention
from model.preprocess import normalize
from model.sa_layer import ShuffleAttention
from testing.checkpoints import random_net
from testing.ci import skip_or_fail

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture(scope="module")
def triton_sa() -> object:
    if importlib.util.find_spec("triton") is None:
        skip_or_fail("triton is not installed (pip install triton)")
    import model.triton_sa

    return model.triton_sa


def _folded_sa(channels: int, seed: int) -> FoldedShuffleAttention:
    torch.manual_seed(seed)
    sa = ShuffleAttention(channels, groups=4)
    with torch.no_grad():
        for p in sa.parameters():
            p.uniform_(-1.5, 1.5)
    return FoldedShuffleAttention(sa, channels).to(DEVICE)


# 9x9: one pass; 20x20: one pass in NCHW, two in channels_last (> ONE_PASS_MAX_CL);
# 36x36 (> ONE_PASS_MAX): statistics then gate in both layouts
@pytest.mark.parametrize("hw", [9, 20, 36])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_kernel_matches_folded_sa(
    triton_sa: object, hw: int, channels_last: bool, dtype: str
) -> None:
    sa = _folded_sa(32, seed=hw)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(2, 32, hw, hw, generator=gen).to(DEVICE, DTYPES[dtype], memory_format=fmt)
    identity = torch.randn(2, 32, hw, hw, generator=gen).to(DEVICE, DTYPES[dtype])
    identity = identity.contiguous(memory_format=fmt)
    ref = sa(y.float(), identity.float().clone())  # fp32 reference on the rounded inputs
    got = triton_sa.sa_gate(y, identity.clone(), sa.alpha, sa.beta, sa.cw, sa.eps)  # type: ignore[attr-defined]
    assert got.dtype == DTYPES[dtype] and got.shape == y.shape
    # one rounding of the result to the storage dtype (2^-8 relative for bf16, 2^-11 fp16)
    tol = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1.6e-2}[dtype]
    assert ((got.float() - ref).abs() / (ref.abs() + 1.0)).max().item() <= tol


def test_mixed_strides_are_handled(triton_sa: object) -> None:
    sa = _folded_sa(16, seed=3)
    y = torch.randn(1, 16, 5, 5, device=DEVICE).contiguous(memory_format=torch.channels_last)
    identity = torch.randn(1, 16, 5, 5, device=DEVICE)  # NCHW: another layout than y
    ref = sa(y.contiguous(), identity.clone())
    got = triton_sa.sa_gate(y, identity.clone(), sa.alpha, sa.beta, sa.cw, sa.eps)  # type: ignore[attr-defined]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_triton_backend_whole_network(triton_sa: object) -> None:
    net = random_net("sanet_tiny", seed=4)
    gen = torch.Generator().manual_seed(2)
    crops = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8, generator=gen)
    with torch.inference_mode():
        ref = fold_model(net)(normalize(crops))  # type: ignore[arg-type]
    compiled = compile_model(net, "triton", device=DEVICE)
    assert compiled.backend == "triton"
    scale = ref.abs().max().item()
    for batch in (crops, normalize(crops)):  # uint8 in, and the float entry
        assert (compiled(batch) - ref).abs().max().item() <= 1e-4 * max(scale, 1.0)


def test_inductor_whole_network_on_cpu() -> None:
    net = random_net("sanet_tiny", seed=5)
    gen = torch.Generator().manual_seed(3)
    crops = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8, generator=gen)
    with torch.inference_mode():
        ref = fold_model(net)(normalize(crops))  # type: ignore[arg-type]
    compiled = compile_model(net, "inductor", device="cpu")
    assert compiled.backend == "inductor"
    scale = ref.abs().max().item()
    assert (compiled(normalize(crops)) - ref).abs().max().item() <= 1e-4 * max(scale, 1.0)
