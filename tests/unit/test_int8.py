"""INT8: refusal without calibration or below the agreement gate; fidelity on a trained net."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import build_engine, create_model
from model.errors import CalibrationError, Int8AgreementError, UnknownBackendError
from testing.ci import require_module
from testing.training import dataset, train_tiny, write_images

require_module("nncf", "a core dependency (INT8 calibration): pip install -e .")
CLASSES = 4


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    return train_tiny(CLASSES)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("calib"), 40, CLASSES, seed=1)


def test_refused_without_calibration(tmp_path: Path) -> None:
    net = create_model("sanet_tiny", num_classes=CLASSES).eval()
    with pytest.raises(CalibrationError, match="SANET_CALIBRATION_DIR"):
        build_engine(net, precision="int8", device="cpu")
    with pytest.raises(CalibrationError, match="not a directory"):
        build_engine(net, precision="int8", device="cpu", calibration_dir=tmp_path / "none")
    write_images(tmp_path / "few", 3, CLASSES, seed=0)
    with pytest.raises(CalibrationError, match="has 3 images"):
        build_engine(net, precision="int8", device="cpu", calibration_dir=tmp_path / "few")
    with pytest.raises(UnknownBackendError, match="int8"):
        build_engine(net, "torchscript", precision="int8", device="cpu", calibration_dir=tmp_path)


def test_trained_net_int8_fidelity(trained: torch.nn.Module, calibration: Path, tmp_path) -> None:
    kwargs = {
        "device": "cpu",
        "cache_dir": tmp_path,
        "cache_key": "tiny",
        "calibration_dir": calibration,
    }
    compiled, report = build_engine(trained, precision="int8", **kwargs)
    assert (compiled.backend, compiled.precision, report.precision) == ("openvino", "int8", "int8")
    info = report.int8
    assert info is not None and info["held_out"] == 8 and info["calibration_images"] == 32
    assert info["agreement"] >= 0.99 and info["max_prob_diff"] <= 0.15
    x, y = dataset(48, CLASSES, seed=2)  # images neither trained on nor calibrated on
    with torch.inference_mode():
        ref, got = torch.softmax(trained(x), 1), torch.softmax(compiled(x), 1)
    assert (ref.argmax(1) == y).float().mean().item() >= 0.9  # the net did learn
    assert (ref.argmax(1) == got.argmax(1)).float().mean().item() >= 0.95
    assert (ref - got).abs().max().item() <= 0.2
    _, again = build_engine(trained, precision="int8", **kwargs)  # cached: no re-quantizing
    assert again.int8 == info


def test_refused_below_agreement(
    trained: torch.nn.Module, calibration: Path, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("model.quantize.fidelity", lambda *_: (0.5, 0.4))
    kwargs = {
        "device": "cpu",
        "cache_dir": tmp_path,
        "cache_key": "t",
        "calibration_dir": calibration,
    }
    with pytest.raises(Int8AgreementError, match=r"50\.0% of 8") as err:
        build_engine(trained, precision="int8", int8_min_agreement=0.99, **kwargs)
    assert (err.value.agreement, err.value.minimum) == (0.5, 0.99)
    _, report = build_engine(trained, precision="int8", int8_min_agreement=0, **kwargs)
    assert report.int8 is not None and report.int8["agreement"] == 0.5  # gate off: served
