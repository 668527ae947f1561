"""uint8 in: the engines take the crop batch (B, 224, 224, 3) uint8 NHWC and normalise inside.

The math is :func:`model.preprocess.normalize`'s, ``x * (1 / (255 std)) - mean / std`` in
float32, one multiply then one subtract: the torch wrapper here, the ONNX graph's first nodes
(``model/onnx_backend.py``), OpenVINO's PrePostProcessor (``model/openvino_backend.py``) and
the CUDA runner (``model/cuda.py``) all compute it, so a uint8 batch gives the logits of its
normalised float batch within fp32 rounding.
"""

# No `from __future__ import annotations` here: TorchScript must read the buffer annotations.
import numpy as np
import torch
from torch import nn

from model.preprocess import MEAN, STD

# The same float64 -> float32 computation as model.preprocess, so the constants are equal.
SCALE = np.array([1.0 / (255.0 * s) for s in STD], dtype=np.float32)
SHIFT = np.array([m / s for m, s in zip(MEAN, STD, strict=True)], dtype=np.float32)


def scale_shift(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (1, 3, 1, 1) float32 scale and shift on ``device``."""
    scale = torch.from_numpy(SCALE.copy()).view(1, 3, 1, 1).to(device)
    shift = torch.from_numpy(SHIFT.copy()).view(1, 3, 1, 1).to(device)
    return scale, shift


def normalize_nhwc(
    x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) normalised, NCHW or channels_last."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=fmt)
    return out.mul_(scale).sub_(shift)


class UInt8Input(nn.Module):
    """``net`` behind an entry that also takes a uint8 NHWC batch (normalised first).

    A float batch goes straight to ``net``: the KServe v2 FP32 ``INPUT`` keeps working.
    """

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, net: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.net = net
        self.channels_last = channels_last
        scale, shift = scale_shift()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = normalize_nhwc(x, self.scale, self.shift, self.channels_last)
        return self.net(x)
