"""bf16 on CPU: refused at start without native bf16, the fidelity gate, a trained net."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import build_engine, compile_model, create_model
from model.cpu import has_bf16
from model.errors import (
    Bf16AgreementError,
    Bf16UnsupportedError,
    CalibrationError,
    UnknownPrecisionError,
)
from testing.ci import require_module
from testing.training import dataset, train_tiny, write_images

require_module("openvino", "a core dependency (bf16 on CPU): pip install -e .")
CLASSES = 4
# Hardware cannot be installed: without bf16 the CPU tests skip, under CI too.
needs_bf16 = pytest.mark.skipif(
    not has_bf16(), reason="this CPU has no AVX512_BF16 or AMX (no bf16 in /proc/cpuinfo)"
)


def fake_cpu(folder: Path, flags: str) -> Path:
    path = folder / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n")
    return path


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    return train_tiny(CLASSES)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("calib"), 24, CLASSES, seed=1)


def test_refused_at_start_on_a_cpu_without_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = create_model("sanet_tiny", num_classes=CLASSES).eval()
    monkeypatch.setattr("model.cpu.CPUINFO", fake_cpu(tmp_path, "fpu sse2 avx2 avx512f"))
    for backend in ("auto", "openvino"):
        with pytest.raises(Bf16UnsupportedError, match=r"AVX512_BF16 or AMX.*Test CPU"):
            build_engine(net, backend, precision="bf16", device="cpu", bf16_min_agreement=0)
    with pytest.raises(Bf16UnsupportedError, match="avx512_bf16 or amx_bf16"):
        compile_model(net, "openvino", precision="bf16")
    monkeypatch.setattr("model.cpu.CPUINFO", fake_cpu(tmp_path, "avx2 amx_tile amx_bf16"))
    with pytest.raises(UnknownPrecisionError, match="bf16 on cpu runs with openvino"):
        compile_model(net, "torchscript", precision="bf16")  # AMX passes the CPU check


@needs_bf16
def test_gate_needs_images_unless_off() -> None:
    net = create_model("sanet_tiny", num_classes=CLASSES).eval()
    with pytest.raises(CalibrationError, match="SANET_BF16_MIN_AGREEMENT=0"):
        build_engine(net, "openvino", precision="bf16", device="cpu")
    _, report = build_engine(net, "openvino", precision="bf16", device="cpu", bf16_min_agreement=0)
    assert report.bf16 is not None and report.bf16["agreement"] is None


@needs_bf16
def test_trained_net_bf16_fidelity(trained: torch.nn.Module, calibration: Path, tmp_path) -> None:
    compiled, report = build_engine(
        trained, precision="bf16", device="cpu", cache_dir=tmp_path, calibration_dir=calibration
    )
    assert (compiled.backend, compiled.precision, report.precision) == ("openvino", "bf16", "bf16")
    plugin = compiled.run_uint8.compiled  # type: ignore[attr-defined]  # the served runner
    assert plugin.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    gate = report.bf16
    assert gate is not None and gate["images"] == 24 and gate["min_agreement"] == 0.99
    assert gate["agreement"] >= 0.99 and 0 < gate["max_prob_diff"] <= 0.05
    x, y = dataset(32, CLASSES, seed=2)  # images the gate did not see
    with torch.inference_mode():
        ref, got = torch.softmax(trained(x), 1), torch.softmax(compiled(x), 1)
    assert (ref.argmax(1) == y).float().mean().item() >= 0.9  # the net did learn
    assert (ref.argmax(1) == got.argmax(1)).float().mean().item() >= 0.95
    assert 0 < (ref - got).abs().max().item() <= 0.05  # bf16 does run, and stays close


@needs_bf16
def test_refused_below_agreement(
    trained: torch.nn.Module, calibration: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("model.bf16.fidelity", lambda _r, _c, part: (0.5, 0.4))
    kwargs = {"device": "cpu", "calibration_dir": calibration}
    with pytest.raises(Bf16AgreementError, match=r"50\.0% of 24") as err:
        build_engine(trained, "openvino", precision="bf16", **kwargs)
    assert (err.value.agreement, err.value.minimum) == (0.5, 0.99)
    _, report = build_engine(trained, "openvino", precision="bf16", bf16_min_agreement=0, **kwargs)
    assert report.bf16 is not None and report.bf16["agreement"] == 0.5  # gate off: served
