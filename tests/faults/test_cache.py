"""Faulty caches (a truncated cached ONNX export, a read-only and empty cache dir): the real
ONNX export path heals instead of crash-looping."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import model


def _net() -> torch.nn.Module:
    return model.random_init("sanet_tiny")


def test_truncated_export_is_moved_aside_and_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net, x = _net(), torch.rand(1, 3, 224, 224)
    first = model.compile_model(net, "onnxruntime", cache_dir=tmp_path, cache_key="k")
    expected = first(x)
    (export,) = tmp_path.glob("k-v*.onnx")
    export.write_bytes(export.read_bytes()[: export.stat().st_size // 2])  # disk full, killed cp
    with caplog.at_level(logging.WARNING):
        healed = model.compile_model(net, "onnxruntime", cache_dir=tmp_path, cache_key="k")
    torch.testing.assert_close(healed(x), expected)
    assert "rebuilding once" in caplog.text
    assert list(tmp_path.glob("k-v*.onnx.corrupt"))


def test_unwritable_cache_dir_still_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "ro"
    blocker.write_bytes(b"")  # not a directory: unwritable even for root
    with caplog.at_level(logging.WARNING):
        runner = model.compile_model(
            _net(), "onnxruntime", cache_dir=blocker / "cache", cache_key="k"
        )
    assert runner(torch.rand(2, 3, 224, 224)).shape[0] == 2
    assert "not writable" in caplog.text
