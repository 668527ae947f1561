"""Which batch sizes run before readiness: every shape the engine specialises on, no more."""

from __future__ import annotations

import pytest
import torch

from service.engine.loading import warm_sizes, warm_up


@pytest.mark.parametrize(
    ("backend", "device", "expected"),
    [
        ("torchscript", "cpu", [1, 2, 3, 4, 5, 6, 7, 8]),  # profiling executor: per shape
        ("eager", "cpu", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("torchscript", "cuda:0", [8, 4, 2, 1]),  # a CUDA graph per bucket, largest first
        ("onnxruntime", "cpu", [1, 8]),  # one graph; buffers sized by the largest
        ("openvino", "cpu", [1]),  # every batch runs one sample at a time
        ("openvino-int8", "cpu", [1]),
    ],
)
def test_warm_sizes(backend: str, device: str, expected: list[int]) -> None:
    assert warm_sizes(backend, device, 8) == expected


def test_warm_up_runs_each_size_once() -> None:
    seen: list[int] = []

    def run(b: int) -> torch.Tensor:
        seen.append(b)
        return torch.zeros(b, 10)

    warm_up("m", run, [1, 8])
    assert seen == [1, 8]
