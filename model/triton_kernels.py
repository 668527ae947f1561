"""The Triton kernels of folded SA (``model/triton_sa.py`` launches them; see its docstring).

Imported on first use only: ``@triton.jit`` reads ``TRITON_INTERPRET`` when a kernel is
defined, and this module needs the ``triton`` package.
"""

import triton
import triton.language as tl


@triton.jit
def _affine(s, ss, alpha_ptr, beta_ptr, cw_ptr, c, cmask, inv_hw, eps):
    """Per channel (a, b) of the gate from the sums of y and y*y over a plane."""
    mean = s * inv_hw
    var = tl.maximum(ss * inv_hw - mean * mean, 0.0)
    alpha = tl.load(alpha_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    beta = tl.load(beta_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    cw = tl.load(cw_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    a = alpha * tl.rsqrt(var + eps)
    return a, beta + mean * (cw - a)


@triton.jit
def one_pass(y_ptr, id_ptr, alpha_ptr, beta_ptr, cw_ptr, C, HW, sb, sc, shw, inv_hw, eps,
             BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):  # fmt: skip
    """A whole plane per tile: statistics and gate in one read of ``y``."""
    pid_b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.arange(0, BLOCK_HW)
    cmask = c < C
    mask = cmask[:, None] & (hw[None, :] < HW)
    off = pid_b * sb + c[:, None] * sc + hw[None, :] * shw
    y = tl.load(y_ptr + off, mask=mask, other=0.0).to(tl.float32)
    a, b = _affine(tl.sum(y, 1), tl.sum(y * y, 1), alpha_ptr, beta_ptr, cw_ptr, c, cmask,
                   inv_hw, eps)  # fmt: skip
    idn = tl.load(id_ptr + off, mask=mask, other=0.0).to(tl.float32)
    out = tl.maximum(idn + y * tl.sigmoid(a[:, None] * y + b[:, None]), 0.0)
    tl.store(id_ptr + off, out.to(id_ptr.dtype.element_ty), mask=mask)


@triton.jit
def stats(y_ptr, ab_ptr, alpha_ptr, beta_ptr, cw_ptr, C, HW, sb, sc, shw, inv_hw, eps,
          BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):  # fmt: skip
    """Large planes, first pass: each (sample, channel)'s (a, b) into ``ab``."""
    pid_b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    s = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    ss = tl.zeros([BLOCK_C, BLOCK_HW], tl.float32)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW)
        mask = cmask[:, None] & (hw[None, :] < HW)
        off = pid_b * sb + c[:, None] * sc + hw[None, :] * shw
        v = tl.load(y_ptr + off, mask=mask, other=0.0).to(tl.float32)
        s += v
        ss += v * v
    a, b = _affine(tl.sum(s, 1), tl.sum(ss, 1), alpha_ptr, beta_ptr, cw_ptr, c, cmask,
                   inv_hw, eps)  # fmt: skip
    tl.store(ab_ptr + (pid_b * 2) * C + c, a, mask=cmask)
    tl.store(ab_ptr + (pid_b * 2 + 1) * C + c, b, mask=cmask)


@triton.jit
def gate(y_ptr, id_ptr, ab_ptr, C, HW, sb, sc, shw,
         BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):  # fmt: skip
    """Large planes, second pass: the gate of one tile with its channels' (a, b)."""
    pid_b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    hw = tl.program_id(2) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    cmask = c < C
    mask = cmask[:, None] & (hw[None, :] < HW)
    off = pid_b * sb + c[:, None] * sc + hw[None, :] * shw
    a = tl.load(ab_ptr + (pid_b * 2) * C + c, mask=cmask, other=0.0)
    b = tl.load(ab_ptr + (pid_b * 2 + 1) * C + c, mask=cmask, other=0.0)
    y = tl.load(y_ptr + off, mask=mask, other=0.0).to(tl.float32)
    idn = tl.load(id_ptr + off, mask=mask, other=0.0).to(tl.float32)
    out = tl.maximum(idn + y * tl.sigmoid(a[:, None] * y + b[:, None]), 0.0)
    tl.store(id_ptr + off, out.to(id_ptr.dtype.element_ty), mask=mask)
