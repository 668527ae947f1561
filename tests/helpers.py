"""Shared test helpers: randomised weights and checkpoints in the authors' layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from model import create_model, save_authors_checkpoint


@torch.no_grad()
def randomize_(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every SA parameter and BN statistic random values (the authors' init of zeros
    and ones would hide layout bugs), keeping activations in a sane range."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            uniform(m.weight, 0.5, 1.5)
            uniform(m.bias, -0.3, 0.3)
            uniform(m.running_mean, -0.3, 0.3)  # type: ignore[arg-type]
            uniform(m.running_var, 0.5, 2.0)  # type: ignore[arg-type]
        elif isinstance(m, nn.GroupNorm):
            uniform(m.weight, 0.5, 1.5)
            uniform(m.bias, -0.5, 0.5)
    for name, p in net.named_parameters():
        if name.rsplit(".", 1)[-1] in ("cweight", "cbias", "sweight", "sbias"):
            uniform(p, -1.5, 1.5)
    return net.eval()


def random_net(arch: str = "sanet_tiny", seed: int = 0, num_classes: int = 1000) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_(create_model(arch, num_classes), seed)


def write_checkpoint(path: Path, arch: str = "sanet_tiny", seed: int = 0) -> tuple[Path, nn.Module]:
    net = random_net(arch, seed)
    return save_authors_checkpoint(net, path, arch), net


def in_ci() -> bool:
    """True under CI (CI=true), where a missing real component is a failure."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip the current test, or fail it under CI: .ci/run must install what tests need."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: required components must be installed)")
    pytest.skip(reason)
