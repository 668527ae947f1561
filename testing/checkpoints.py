"""Random SA-ResNets and checkpoint files, each writer named for what it writes.

Weights cannot be downloaded here, so tests build checkpoints in the authors' released layout
(docs/model.md "The network") from random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model import create_model

TINY = "sanet_tiny"


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


def random_net(arch: str = TINY, seed: int = 0, num_classes: int = 1000) -> nn.Module:
    """``arch`` with seeded random weights, every SA parameter and BN statistic included."""
    torch.manual_seed(seed)
    return randomize_(create_model(arch, num_classes), seed)


def write_authors_checkpoint(path: Path, net: nn.Module, arch: str, epoch: int = 100) -> Path:
    """Write ``net`` exactly as the authors' released files are laid out.

    A dict with ``epoch``, ``arch``, ``state_dict`` (DataParallel ``module.`` keys),
    ``best_acc`` and ``optimizer``; the last two are placeholders of the right types.
    """
    state = {f"module.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    torch.save(
        {
            "epoch": epoch,
            "arch": arch,
            "state_dict": state,
            "best_acc": torch.tensor(77.88),
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9}]},
        },
        path,
    )
    return path


def random_authors_checkpoint(
    path: Path, arch: str = TINY, seed: int = 0
) -> tuple[Path, nn.Module]:
    """A ``random_net`` written in the authors' layout; returns the file and the network."""
    net = random_net(arch, seed)
    return write_authors_checkpoint(path, net, arch), net


@torch.no_grad()
def separate_(net: nn.Module) -> nn.Module:
    """Scale ``net``'s fc by 60 so that different photos get clearly different probability
    vectors (a random-init net answers nearly the same for every photo, which would hide
    answers mixed up between requests, or a decoder that gets the pixels wrong)."""
    fc = net.fc
    assert isinstance(fc, nn.Linear)
    fc.weight.mul_(60.0)
    return net


def separating_net(seed: int = 0, num_classes: int = 1000) -> nn.Module:
    """The tiny ``random_net`` with its fc scaled (:func:`separate_`)."""
    return separate_(random_net(TINY, seed, num_classes))


def separating_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """The tiny network at its init values, fc scaled (:func:`separate_`), in the authors'
    layout: the model the test tiers serve."""
    torch.manual_seed(seed)
    return write_authors_checkpoint(path, separate_(create_model(TINY)), TINY)
