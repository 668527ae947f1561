"""uint8 in: the engines take the crop batch (B, 224, 224, 3) uint8 NHWC and normalise inside.

The math is :func:`model.preprocess.normalize`'s, ``x * (1 / (255 std)) - mean / std`` in
float32, one multiply then one subtract: the torch wrapper here, the ONNX graph's first nodes
(``model/onnx_backend.py``), OpenVINO's PrePostProcessor (``model/openvino_backend.py``) and
the CUDA runner (``model/cuda.py``) all compute it, so a uint8 batch gives the logits of its
normalised float batch within fp32 rounding.
"""

# No `from __future__ import annotations` here: TorchScript must read the buffer annotations.
import torch
from torch import nn

from model.preprocess import SCALE, SHIFT, normalize_nhwc, scale_shift

__all__ = ["SCALE", "SHIFT", "UInt8Input", "normalize_nhwc", "scale_shift"]


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
