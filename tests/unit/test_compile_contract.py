"""compile_model's contract on every CPU backend: the caller's network is never touched, and
a uint8 NHWC crop batch gives the logits of its normalised float batch."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from model import compile_model, fold_model
from model.compile import CompiledModel
from model.preprocess import normalize
from testing.checkpoints import random_net

CPU_BACKENDS = ["eager", "torchscript", "onnxruntime", "openvino"]


def _backends() -> list[str]:
    have_ov = importlib.util.find_spec("openvino") is not None
    return [b for b in CPU_BACKENDS if b != "openvino" or have_ov]


def _engine_tensors(run: object) -> Iterator[torch.Tensor]:
    """Every torch tensor an engine holds: module state, or a frozen graph's constants."""
    if isinstance(run, torch.jit.ScriptModule):
        yield from run.state_dict().values()
        for node in run.graph.findAllNodes("prim::Constant"):  # type: ignore[attr-defined]
            if node.output().type().kind() == "TensorType":
                yield node.t("value")
    elif isinstance(run, nn.Module):
        yield from run.state_dict().values()


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module", params=_backends())
def compiled_pair(request: pytest.FixtureRequest) -> tuple[nn.Module, CompiledModel, dict]:
    """A train-mode caller network, its snapshot taken before compiling, and the engine."""
    net = random_net("sanet_tiny", seed=5).train()
    before = _snapshot(net)
    return net, compile_model(net, request.param), before


def test_caller_is_untouched(compiled_pair: tuple[nn.Module, CompiledModel, dict]) -> None:
    net, compiled, before = compiled_pair
    assert all(m.training for m in net.modules())  # no .eval() on the caller's modules
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
        assert after[key].device.type == "cpu" and after[key].dtype == value.dtype, key
    caller = {t.untyped_storage().data_ptr() for t in net.state_dict().values()}
    for tensor in _engine_tensors(compiled.run):
        assert tensor.untyped_storage().data_ptr() not in caller


def test_engine_keeps_its_own_weights(
    compiled_pair: tuple[nn.Module, CompiledModel, dict], crops: torch.Tensor
) -> None:
    """Overwriting the caller's weights afterwards cannot change the engine's answers."""
    net, compiled, _ = compiled_pair
    expected = compiled(crops)
    saved = _snapshot(net)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    try:
        torch.testing.assert_close(compiled(crops), expected, rtol=0, atol=0)
    finally:
        net.load_state_dict(saved)


def test_uint8_equals_normalised_float(
    compiled_pair: tuple[nn.Module, CompiledModel, dict], crops: torch.Tensor
) -> None:
    _, compiled, _ = compiled_pair
    from_float = compiled(normalize(crops))
    from_uint8 = compiled(crops)
    assert from_uint8.dtype == torch.float32 and from_uint8.shape == (3, 1000)
    scale = from_float.abs().max().item()
    assert (from_uint8 - from_float).abs().max().item() <= 1e-4 * max(scale, 1.0)
    single = compiled(crops[:1])  # the uint8 entry has a dynamic batch axis too
    assert (single - from_float[:1]).abs().max().item() <= 1e-4 * max(scale, 1.0)


def test_fold_model_shares_nothing() -> None:
    net = random_net("sanet_tiny", seed=6).train()
    folded = fold_model(net)  # type: ignore[arg-type]
    caller = {t.untyped_storage().data_ptr() for t in net.state_dict().values()}
    assert not folded.training and net.training
    for name, tensor in folded.state_dict().items():
        assert tensor.untyped_storage().data_ptr() not in caller, name


def test_unfolded_compile_copies_too(crops: torch.Tensor) -> None:
    net = random_net("sanet_tiny", seed=8).train()
    compiled = compile_model(net, "eager", fold=False)
    assert net.training
    caller = {t.untyped_storage().data_ptr() for t in net.state_dict().values()}
    assert not any(t.untyped_storage().data_ptr() in caller for t in _engine_tensors(compiled.run))
    host = compiled(crops[:1])
    assert torch.isfinite(host).all()
