"""compile_model's contract on every CPU backend: the caller's network is never touched, and
a uint8 NHWC crop batch gives the logits of its normalised float batch."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from model import compile_model, fold_model
from model.compile import CompiledModel
from model.preprocess import normalize
from testing.checkpoints import random_net
from testing.ci import require_module

CPU_BACKENDS = ["eager", "torchscript", "onnxruntime", "openvino"]
NATIVE = {"onnxruntime": "session", "openvino": "compiled"}  # the runner's native engine


def _engine_tensors(run: object) -> Iterator[torch.Tensor]:
    """Every torch tensor an engine holds: module state, or a frozen graph's constants."""
    if isinstance(run, torch.jit.ScriptModule):
        yield from run.state_dict().values()
        for node in run.graph.findAllNodes("prim::Constant"):  # type: ignore[attr-defined]
            if node.output().type().kind() == "TensorType":
                yield node.t("value")
    elif isinstance(run, nn.Module):
        yield from run.state_dict().values()


def _reachable_tensors(obj: object, depth: int = 4) -> Iterator[torch.Tensor]:
    """Torch tensors reachable from a runner's attributes (an exported engine holds none:
    its weights were serialised into the native graph)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth and isinstance(obj, list | tuple | set):
        for item in obj:
            yield from _reachable_tensors(item, depth - 1)
    elif depth and isinstance(obj, dict):
        for item in obj.values():
            yield from _reachable_tensors(item, depth - 1)
    elif depth and hasattr(obj, "__dict__") and not isinstance(obj, type):
        for item in vars(obj).values():
            yield from _reachable_tensors(item, depth - 1)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module", params=CPU_BACKENDS)
def compiled_pair(request: pytest.FixtureRequest) -> tuple[nn.Module, CompiledModel, dict]:
    """A train-mode caller network, its snapshot taken before compiling, and the engine."""
    if request.param in NATIVE:
        require_module(request.param, "a core dependency: pip install -e .")
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
    runners = [compiled.run]
    if compiled.run_uint8 is not None and compiled.run_uint8 is not compiled.run:
        runners.append(compiled.run_uint8)
    for run in runners:
        if compiled.backend in NATIVE:  # the weights went into the native engine at export
            assert getattr(run, NATIVE[compiled.backend]) is not None
            assert list(_reachable_tensors(run)) == [], "a torch tensor kept beside the engine"
        else:
            held = list(_engine_tensors(run))
            assert held, f"{compiled.backend}: no tensors found to check"
            assert not any(t.untyped_storage().data_ptr() in caller for t in held)


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
    reference = copy.deepcopy(net).eval()
    with torch.inference_mode():
        want = reference(normalize(crops[:1]))
    torch.testing.assert_close(compiled(crops[:1]), want, rtol=1e-4, atol=1e-4)
