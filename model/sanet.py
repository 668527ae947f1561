"""SA-ResNet (torchvision ResNet v1.5 with one Shuffle Attention module per bottleneck).

Parameter names are a contract with the authors' released checkpoints; ``tests/unit``
pins them together with the parameter counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.errors import UnknownModelError
from model.sa_layer import ShuffleAttention

RANDOM_INIT_SEED = 0  # the seed of random-init weights (service, CLI and benchmarks)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv) with SA applied to the output of bn3."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        sa_groups: int = 64,
        use_sa: bool = True,
    ) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, width)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.sa: nn.Module = ShuffleAttention(width, sa_groups) if use_sa else nn.Identity()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.sa(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


class SANet(nn.Module):
    """SA-ResNet: stem, four stages of :class:`Bottleneck`, global pool, ``fc``."""

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        width: int = 64,
        sa_groups: int = 64,
        use_sa: bool = True,
    ) -> None:
        super().__init__()
        self.inplanes = width
        self.sa_groups = sa_groups
        self.use_sa = use_sa
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8 * Bottleneck.expansion, num_classes)
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
        layers = [
            Bottleneck(self.inplanes, planes, stride, downsample, self.sa_groups, self.use_sa)
        ]
        self.inplanes = out
        layers += [
            Bottleneck(out, planes, sa_groups=self.sa_groups, use_sa=self.use_sa)
            for _ in range(1, blocks)
        ]
        return nn.Sequential(*layers)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture."""

    name: str
    layers: tuple[int, int, int, int]
    width: int = 64
    sa_groups: int = 64
    description: str = ""


_REGISTRY: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("sanet50", (3, 4, 6, 3), description="SA-ResNet-50 (77.88 top-1)"),
        ArchSpec("sanet101", (3, 4, 23, 3), description="SA-ResNet-101 (78.95 top-1)"),
        ArchSpec("sanet152", (3, 8, 36, 3), description="SA-ResNet-152"),
        ArchSpec("sanet_tiny", (1, 1, 1, 1), 16, 8, description="tiny test network"),
    )
}


def list_models() -> list[str]:
    """Names the registry can build."""
    return list(_REGISTRY)


def arch_spec(name: str) -> ArchSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(_REGISTRY)}") from None


def create_model(name: str, num_classes: int = 1000, *, use_sa: bool = True) -> SANet:
    """Build a randomly initialised network by registry name.

    ``use_sa=False`` builds the same ResNet without SA modules (for benchmarks).
    """
    spec = arch_spec(name)
    net = SANet(spec.layers, num_classes, spec.width, spec.sa_groups, use_sa)
    net.arch = spec.name  # type: ignore[assignment]
    return net


def random_init(name: str, num_classes: int = 1000, *, seed: int = RANDOM_INIT_SEED) -> SANet:
    """The network ``name`` with seeded random weights, in eval mode: the same weights on
    every call with one seed (so their compiled cache key repeats), the global RNG untouched.
    Its predictions mean nothing; it stands in where no checkpoint is given."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_model(name, num_classes).eval()


def arch_of(net: nn.Module) -> str:
    """Registry name of a network built by :func:`create_model` or ``load_checkpoint``."""
    name = getattr(net, "arch", None)
    if not isinstance(name, str):
        raise UnknownModelError("network was not built by the model registry")
    return name


def sanet50(num_classes: int = 1000) -> SANet:
    return create_model("sanet50", num_classes)


def sanet101(num_classes: int = 1000) -> SANet:
    return create_model("sanet101", num_classes)


def sanet152(num_classes: int = 1000) -> SANet:
    return create_model("sanet152", num_classes)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
