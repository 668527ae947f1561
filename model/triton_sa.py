"""Folded SA as Triton kernels: the statistics and the gate of a block in one or two passes.

Per (sample, channel) the folded block needs the mean and mean of squares of ``y`` (conv3's
output), then ``relu(identity + y * sigmoid(a*y + b))`` with ``a = alpha * rsqrt(var + eps)``
and ``b = beta + mean * (cw - a)`` (``model/folding.py``). Where a channel's whole plane fits
in one tile (H*W <= ``ONE_PASS_MAX``: layer2-4 at 224 input) one kernel reads ``y`` once,
reduces and writes the result; larger planes take a statistics kernel then a gate kernel.
Both index ``y`` through strides, so NCHW and channels_last run unchanged; arithmetic is fp32
whatever the storage dtype (fp16, bf16, fp32). The result is written over ``identity``,
which is always a tensor made inside the network (as the eager path does).

The kernels are in ``model/triton_kernels.py``, imported on first use: ``TRITON_INTERPRET=1``
set before that (the unit tests do) runs them on CPU tensors, and importing this module needs
no triton.
"""

from __future__ import annotations

import torch
from torch import nn

from model.folding import FoldedShuffleAttention, switch_sa

ONE_PASS_MAX = 1024  # the largest H*W read into one tile (registers) by the one-pass kernel
# channels_last: a one-pass tile of a 1024-pixel plane holds 4 channels, 8 contiguous bytes
# in fp16; above 256 pixels the two-pass tiles (32 channels wide) read memory better.
ONE_PASS_MAX_CL = 256
TILE = 4096  # elements per program in the one-pass kernel


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _blocks(channels_last: bool, hw: int, one_pass: bool) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_HW): the contiguous axis gets the long side of the tile."""
    if one_pass:
        block_hw = _pow2(hw)
        return max(1, min(64, TILE // block_hw)), block_hw
    return (32, 64) if channels_last else (4, 512)


def _plane_strides(y: torch.Tensor) -> tuple[int, int, int] | None:
    """(sample, channel, pixel) strides when H and W merge into one pixel axis, else None."""
    _, _, _, w = y.shape
    if y.stride(2) != w * y.stride(3):
        return None
    return y.stride(0), y.stride(1), y.stride(3)


def sa_gate(
    y: torch.Tensor,
    identity: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    cw: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """``relu(identity + y * sigmoid(a*y + b))`` of folded SA, written over ``identity``."""
    from model import triton_kernels as k  # imported on first use: see the module docstring

    strides = _plane_strides(y)
    if strides is None:
        y = y.contiguous()
        strides = _plane_strides(y)
        assert strides is not None
    if identity.stride() != y.stride() or identity.dtype != y.dtype:
        identity = torch.empty_like(y).copy_(identity)  # same strides as y: one index for both
    bsz, channels, h, w = y.shape
    hw = h * w
    channels_last = strides[1] == 1 and channels > 1
    params = [t.reshape(-1) for t in (alpha, beta, cw)]
    scalars = (channels, hw, *strides, 1.0 / hw, float(eps))
    if hw <= (ONE_PASS_MAX_CL if channels_last else ONE_PASS_MAX):
        bc, bhw = _blocks(channels_last, hw, True)
        warps = 8 if bc * bhw >= 2048 else 4  # a large tile: fewer registers per thread
        k.one_pass[(bsz, -(-channels // bc))](
            y, identity, *params, *scalars, BLOCK_C=bc, BLOCK_HW=bhw, num_warps=warps
        )
        return identity
    bc, bhw = _blocks(channels_last, hw, False)
    ab = torch.empty(bsz, 2, channels, device=y.device, dtype=torch.float32)
    k.stats[(bsz, -(-channels // bc))](y, ab, *params, *scalars, BLOCK_C=bc, BLOCK_HW=bhw)
    tiles = (bsz, -(-channels // bc), -(-hw // bhw))
    k.gate[tiles](y, identity, ab, channels, hw, *strides, BLOCK_C=bc, BLOCK_HW=bhw)
    return identity


class TritonShuffleAttention(FoldedShuffleAttention):
    """Folded SA through :func:`sa_gate` (CUDA tensors, or any under TRITON_INTERPRET=1)."""

    def forward(self, y: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return sa_gate(y, identity, self.alpha, self.beta, self.cw, self.eps)


def use_triton_sa(module: nn.Module) -> int:
    """Switch every folded SA in ``module`` to the Triton kernels; the number switched."""
    return switch_sa(module, TritonShuffleAttention)
