"""The OpenVINO backend: parity with eager fp32, explicit f32, threads, the on-disk cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model import compile_model, create_model
from testing.ci import require_module

ATOL = 1e-4
ov = require_module("openvino", "a core dependency: pip install -e .")


def random_sa_net(arch: str, seed: int) -> nn.Module:
    """A network whose SA parameters and BN statistics are far from their init values."""
    torch.manual_seed(seed)
    net = create_model(arch)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=gen)  # type: ignore[union-attr]
                m.running_var.uniform_(0.5, 2.0, generator=gen)  # type: ignore[union-attr]
                m.bias.uniform_(-0.3, 0.3, generator=gen)
        for name, p in net.named_parameters():
            if name.rsplit(".", 1)[-1] in ("cweight", "cbias", "sweight", "sbias"):
                p.uniform_(-1.5, 1.5, generator=gen)
    return net.eval()


def eager(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("fold", [True, False])
def test_tiny_parity(batch: torch.Tensor, fold: bool) -> None:
    net = random_sa_net("sanet_tiny", 3)
    compiled = compile_model(net, "openvino", fold=fold, threads=1)
    assert (compiled.backend, compiled.device, compiled.precision) == ("openvino", "cpu", "fp32")
    for x in (batch, batch[:1]):  # any batch size
        out = compiled(x)
        assert out.shape == (x.shape[0], 1000) and out.dtype == torch.float32
        assert (out - eager(net, x)).abs().max().item() <= ATOL


def test_f32_threads_and_cache(batch: torch.Tensor, tmp_path) -> None:
    net = random_sa_net("sanet_tiny", 4)
    first = compile_model(net, "openvino", threads=1, cache_dir=tmp_path, cache_key="k")
    plugin = first.run_uint8.compiled  # type: ignore[union-attr]
    assert plugin.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert int(plugin.get_property("INFERENCE_NUM_THREADS")) == 1
    exports = sorted(tmp_path.glob("k-*.onnx"))  # shared with onnxruntime
    blobs = lambda: sorted((tmp_path / "openvino").glob("*.blob"))  # noqa: E731
    assert len(exports) == 1 and len(blobs()) == 1  # the uint8-input model; float: on use
    first(batch)  # a float32 batch builds the float model
    assert len(blobs()) == 2
    stamps = [p.stat().st_mtime_ns for p in (*exports, *blobs())]
    second = compile_model(net, "openvino", threads=1, cache_dir=tmp_path, cache_key="k")
    torch.testing.assert_close(first(batch), second(batch))
    assert [p.stat().st_mtime_ns for p in (*exports, *blobs())] == stamps  # reused


def test_sanet50_parity(batch: torch.Tensor, tmp_path) -> None:
    net = random_sa_net("sanet50", 5)
    compiled = compile_model(net, "openvino", cache_dir=tmp_path, cache_key="s50")
    diff = (compiled(batch[:2]) - eager(net, batch[:2])).abs().max().item()
    assert diff <= ATOL
