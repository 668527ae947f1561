"""The Shuffle Attention layer (SA-Net, arXiv 2102.00240), with the authors' parameter names."""

from __future__ import annotations

import torch
from torch import nn


class ShuffleAttention(nn.Module):
    """Shuffle Attention over ``groups`` channel groups.

    Each group's channels are split in half: the first half gets a channel gate from its
    global average, the second half a spatial gate from its GroupNorm'd values. The halves
    are concatenated and the channels shuffled with two groups. Parameter names
    (``cweight``, ``cbias``, ``sweight``, ``sbias``, ``gn``) match the published checkpoints.
    """

    def __init__(self, channels: int, groups: int = 64) -> None:
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(f"channels ({channels}) must be divisible by 2 * groups ({groups})")
        half = channels // (2 * groups)
        self.groups = groups
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b * self.groups, c // self.groups, h, w)
        x_channel, x_spatial = x.chunk(2, dim=1)
        s = x_channel.mean(dim=(2, 3), keepdim=True)
        x_channel = x_channel * torch.sigmoid(self.cweight * s + self.cbias)
        n = self.gn(x_spatial)
        x_spatial = x_spatial * torch.sigmoid(self.sweight * n + self.sbias)
        out = torch.cat([x_channel, x_spatial], dim=1).reshape(b, c, h, w)
        return channel_shuffle(out, 2)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups: (B, g, C/g, H, W) -> swap -> (B, C, H, W)."""
    b, c, h, w = x.shape
    x = x.reshape(b, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(b, c, h, w)


def shuffle_permutation(channels: int, groups: int = 2) -> torch.Tensor:
    """Index map of :func:`channel_shuffle`: ``out[:, n] == x[:, perm[n]]``."""
    per_group = channels // groups
    n = torch.arange(channels)
    return (n % groups) * per_group + n // groups
