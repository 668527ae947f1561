"""Exact inference-time folding of SA-ResNet (docs/model.md, "Folding").

- BatchNorm folds into the preceding conv (weight scale, bias shift).
- The two-group channel shuffle after SA is a fixed permutation: it folds into conv3's
  output channels and the SA per-channel parameters, so no reshape/cat/shuffle remains.
- GroupNorm (one channel per group) and the SA gates collapse to ``x * sigmoid(a*x + b)``
  with per-sample, per-channel ``a = alpha * rsqrt(var + eps)`` and
  ``b = beta + mean * (cw - a)``; channel-branch channels have ``alpha = 0``.
What is left per block is one statistics pass and one elementwise pass that also takes the
residual add and the final ReLU.
"""

# No `from __future__ import annotations` here: TorchScript must read the buffer annotations.
import copy
from typing import Self

import torch
from torch import nn

from model.sa_layer import ShuffleAttention, shuffle_permutation
from model.sanet import Bottleneck, SANet


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias that computes ``bn(conv(x))`` in eval mode."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    fused.bias = nn.Parameter(bn.bias.detach() + (bias - bn.running_mean) * scale)
    return fused


def _permute_out(conv: nn.Conv2d, perm: torch.Tensor) -> nn.Conv2d:
    conv.weight.data = conv.weight.data[perm].contiguous()
    assert conv.bias is not None
    conv.bias.data = conv.bias.data[perm].contiguous()
    return conv


class FoldedShuffleAttention(nn.Module):
    """SA in folded form; the input is already in post-shuffle channel order."""

    alpha: torch.Tensor
    beta: torch.Tensor
    cw: torch.Tensor

    def __init__(self, sa: ShuffleAttention, channels: int) -> None:
        super().__init__()
        groups = sa.groups
        per_group = channels // groups
        half = per_group // 2
        j = torch.arange(channels) % per_group
        spatial = j >= half
        idx = torch.where(spatial, j - half, j)
        flat = [p.detach().reshape(-1) for p in (sa.cweight, sa.cbias, sa.sweight, sa.sbias)]
        cw, cb, sw, sb = (t[idx] for t in flat)
        gw, gb = sa.gn.weight.detach()[idx], sa.gn.bias.detach()[idx]
        alpha = torch.where(spatial, sw * gw, torch.zeros_like(sw))
        beta = torch.where(spatial, sb + sw * gb, cb)
        cwm = torch.where(spatial, torch.zeros_like(cw), cw)
        perm = shuffle_permutation(channels, 2)
        shape = (1, channels, 1, 1)
        self.register_buffer("alpha", alpha[perm].reshape(shape).contiguous())
        self.register_buffer("beta", beta[perm].reshape(shape).contiguous())
        self.register_buffer("cw", cwm[perm].reshape(shape).contiguous())
        self.eps = float(sa.gn.eps)

    @classmethod
    def from_folded(cls, sa: "FoldedShuffleAttention") -> Self:
        """A module of this class over the same folded parameters (a kernel-backed variant)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for name in ("alpha", "beta", "cw"):
            new.register_buffer(name, getattr(sa, name))
        new.eps = sa.eps
        return new

    def affine(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample, per-channel ``a``, ``b`` of the gate ``sigmoid(a*y + b)`` (fp32)."""
        # Two plain reductions (mean and L2 norm) instead of var_mean: each is one
        # vectorised read of y, where var_mean's Welford loop costs ~40x more on CPU.
        hw = y.shape[2] * y.shape[3]
        mean = y.mean(dim=[2, 3], keepdim=True, dtype=torch.float32)
        norm = torch.linalg.vector_norm(y, 2, dim=[2, 3], keepdim=True, dtype=torch.float32)
        var = torch.clamp_min(norm * norm / hw - mean * mean, 0.0)
        a = self.alpha * torch.rsqrt(var + self.eps)
        return a, self.beta + mean * (self.cw - a)

    def forward(self, y: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return self.unfused(y, identity)

    def unfused(self, y: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``relu(identity + y * sigmoid(a*y + b))``, in place on fresh intermediates.

        ``identity`` is always a tensor made inside the network (the previous block's
        output or a downsample conv's), never the caller's input, so it may be overwritten:
        in-place ops save two large allocations per block.
        """
        a, b = self.affine(y)
        gate = torch.addcmul(b.to(y.dtype), a.to(y.dtype), y).sigmoid_()
        return identity.addcmul_(y, gate).relu_()


class FusedShuffleAttention(FoldedShuffleAttention):
    """Folded SA through the fused CPU kernel (``model/fused.py``) where it applies.

    Only build it after ``load_fused_sa()`` returned True: the forward names the op.
    """

    def forward(self, y: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        if (
            y.device.type == "cpu"
            and y.dtype == torch.float32
            and identity.dtype == torch.float32
            and y.is_contiguous()
            and identity.is_contiguous()
        ):
            return torch.ops.sanet.sa_fused(identity, y, self.alpha, self.beta, self.cw, self.eps)
        return self.unfused(y, identity)


def switch_sa(module: nn.Module, variant: type[FoldedShuffleAttention]) -> int:
    """Switch every plain folded SA in ``module`` to ``variant``; the number switched."""
    count = 0
    for block in module.modules():
        if isinstance(block, FoldedBottleneck) and type(block.sa) is FoldedShuffleAttention:
            block.sa = variant.from_folded(block.sa)
            count += 1
    return count


def use_fused_sa(module: nn.Module) -> int:
    """Switch every folded SA in ``module`` to the fused kernel; the number switched."""
    return switch_sa(module, FusedShuffleAttention)


class FoldedBottleneck(nn.Module):
    """A bottleneck with BN folded into convs and SA (if any) in folded form."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv1 = fold_bn(block.conv1, block.bn1)
        self.conv2 = fold_bn(block.conv2, block.bn2)
        conv3 = fold_bn(block.conv3, block.bn3)
        self.downsample: nn.Module | None = None
        if block.downsample is not None:
            ds_conv, ds_bn = block.downsample[0], block.downsample[1]  # type: ignore[index]
            self.downsample = fold_bn(ds_conv, ds_bn)
        self.sa: FoldedShuffleAttention | None = None
        if isinstance(block.sa, ShuffleAttention):
            channels = conv3.out_channels
            conv3 = _permute_out(conv3, shuffle_permutation(channels, 2))
            self.sa = FoldedShuffleAttention(block.sa, channels)
        self.conv3 = conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)
        out = torch.relu(self.conv1(x))
        out = torch.relu(self.conv2(out))
        out = self.conv3(out)
        if self.sa is not None:
            return self.sa(out, identity)
        return out.add_(identity).relu_()  # in place, like the SA path: a fair baseline


class FoldedSANet(nn.Module):
    """The whole network in folded inference form (same logits as the eval-mode original)."""

    def __init__(self, net: SANet) -> None:
        super().__init__()
        self.stem = fold_bn(net.conv1, net.bn1)
        self.maxpool = copy.deepcopy(net.maxpool)
        blocks = [FoldedBottleneck(b) for layer in _stages(net) for b in layer]  # type: ignore[arg-type]
        self.blocks = nn.Sequential(*blocks)
        self.fc = copy.deepcopy(net.fc)  # its own copy: compiling must never move the caller's
        self.arch = getattr(net, "arch", "unknown")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.stem(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(x.mean(dim=[2, 3]), 1))


def _stages(net: SANet) -> list[nn.Sequential]:
    return [net.layer1, net.layer2, net.layer3, net.layer4]


@torch.no_grad()
def fold_model(net: SANet) -> FoldedSANet:
    """Fold an SA-ResNet into :class:`FoldedSANet`, its inference (eval-mode) form.

    ``net`` is not changed and shares no tensor with the result (its mode, device and dtype
    stay as they were), so compiling for another device never moves the caller's network.
    """
    return FoldedSANet(net).eval()
