"""The network: parameter counts, names and shapes are a contract with the checkpoints."""

from __future__ import annotations

import pytest
import torch

from model import count_parameters, create_model, list_models, random_init, sanet50, sanet101
from model.errors import UnknownModelError

EXPECTED_PARAMS = {"sanet50": 25_557_740, "sanet101": 44_550_684}
BLOCKS = {"sanet50": (3, 4, 6, 3), "sanet101": (3, 4, 23, 3)}


@pytest.mark.parametrize("arch", ["sanet50", "sanet101"])
def test_parameter_count(arch: str) -> None:
    with torch.device("meta"):
        net = create_model(arch)
    assert count_parameters(net) == EXPECTED_PARAMS[arch]


def test_thin_builders_match_registry() -> None:
    with torch.device("meta"):
        assert count_parameters(sanet50()) == EXPECTED_PARAMS["sanet50"]
        assert count_parameters(sanet101()) == EXPECTED_PARAMS["sanet101"]
        assert count_parameters(sanet50(num_classes=10)) == EXPECTED_PARAMS["sanet50"] - 2049 * 990


def _expected_keys(blocks: tuple[int, int, int, int]) -> dict[str, tuple[int, ...]]:
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}
    keys.update({f"bn1.{s}": (64,) if s != "num_batches_tracked" else () for s in bn})
    inplanes = 64
    for stage, count in enumerate(blocks, start=1):
        planes = 64 * 2 ** (stage - 1)
        out = planes * 4
        for i in range(count):
            p = f"layer{stage}.{i}"
            cin = inplanes if i == 0 else out
            convs = {
                "conv1": (planes, cin, 1, 1),
                "conv2": (planes, planes, 3, 3),
                "conv3": (out, planes, 1, 1),
            }
            for name, shape in convs.items():
                keys[f"{p}.{name}.weight"] = shape
                c = shape[0]
                keys.update({f"{p}.bn{name[-1]}.{s}": (c,) if s != bn[-1] else () for s in bn})
            half = out // 128
            for s in ("cweight", "cbias", "sweight", "sbias"):
                keys[f"{p}.sa.{s}"] = (1, half, 1, 1)
            keys[f"{p}.sa.gn.weight"] = (half,)
            keys[f"{p}.sa.gn.bias"] = (half,)
            if i == 0:
                keys[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                keys.update({f"{p}.downsample.1.{s}": (out,) if s != bn[-1] else () for s in bn})
        inplanes = out
    keys["fc.weight"] = (1000, 2048)
    keys["fc.bias"] = (1000,)
    return keys


@pytest.mark.parametrize("arch", ["sanet50", "sanet101"])
def test_state_dict_names_and_shapes(arch: str) -> None:
    with torch.device("meta"):
        state = create_model(arch).state_dict()
    got = {k: tuple(v.shape) for k, v in state.items()}
    assert got == _expected_keys(BLOCKS[arch])


def test_any_num_classes_and_forward() -> None:
    net = create_model("sanet_tiny", num_classes=7).eval()
    with torch.inference_mode():
        assert net(torch.randn(2, 3, 224, 224)).shape == (2, 7)


def test_registry() -> None:
    assert {"sanet50", "sanet101", "sanet152", "sanet_tiny"} <= set(list_models())
    with pytest.raises(UnknownModelError, match="resnet9000"):
        create_model("resnet9000")


def test_without_sa_is_plain_resnet50() -> None:
    with torch.device("meta"):
        net = create_model("sanet50", use_sa=False)
    assert count_parameters(net) == 25_557_032
    assert not any(".sa." in k for k in net.state_dict())


def test_random_init_is_seeded_in_eval_mode_and_leaves_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a, b = random_init("sanet_tiny"), random_init("sanet_tiny")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not a.training
    same = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in same)
    other = random_init("sanet_tiny", seed=1)
    assert not torch.equal(a.conv1.weight, other.conv1.weight)
