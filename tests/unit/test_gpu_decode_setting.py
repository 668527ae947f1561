"""SANET_GPU_DECODE in the engine: on fails at start naming what is missing (or that the
data path cannot use it), auto and off end off with their reason."""

import pytest

from model.errors import GpuDecodeError
from service.engine.model import NOT_IN_DATA_PATH, gpu_decode_choice


def test_on_without_a_gpu_names_what_is_missing() -> None:
    with pytest.raises(GpuDecodeError, match="CUDA device"):
        gpu_decode_choice("on", "cpu")


def test_auto_and_off_end_off_with_a_reason() -> None:
    auto = gpu_decode_choice("auto", "cpu")
    assert not auto.enabled and "CUDA device" in auto.reason
    off = gpu_decode_choice("off", "cpu")
    assert not off.enabled and off.reason


def test_a_gpu_decode_that_could_run_is_not_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    import service.engine.model as em
    from model.gpu_decode import DecodeChoice

    monkeypatch.setattr(em, "resolve_mode", lambda mode, device: DecodeChoice(mode, True, "p", ""))
    with pytest.raises(GpuDecodeError, match="crops"):
        gpu_decode_choice("on", "cuda")
    assert gpu_decode_choice("auto", "cuda").reason == f"off: {NOT_IN_DATA_PATH}"
