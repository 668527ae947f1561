"""The CUDA path: reduced precision, channels_last, pinned host buffers, CUDA graphs.

Each batch size gets its own captured graph on first use (the service's warm-up touches
every size the batcher can form, so no capture happens on the request path). Host-to-device
copies go through a pinned staging buffer with ``non_blocking=True``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from model.scripting import script_module


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    static_in: torch.Tensor
    static_out: torch.Tensor


class CudaRunner:
    """Run ``module`` on the current CUDA device; callable float32 CPU batch -> CPU logits."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, use_graphs: bool = True) -> None:
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype
        self.module = module
        self.use_graphs = use_graphs
        self._graphs: dict[int, _Graph] = {}
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}
        self._stream = torch.cuda.Stream(self.device)
        self._lock = threading.Lock()

    def _staging(self, batch: torch.Tensor) -> torch.Tensor:
        key = tuple(batch.shape)
        buf = self._pinned.get(key)
        if buf is None:
            buf = self._pinned[key] = torch.empty(key, dtype=torch.float32).pin_memory()
        buf.copy_(batch)
        return buf

    def _device_input(self, host: torch.Tensor) -> torch.Tensor:
        x = host.to(self.device, non_blocking=True)
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _capture(self, host: torch.Tensor) -> _Graph:
        static_in = self._device_input(host)
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            for _ in range(3):  # let cudnn pick algorithms and the JIT specialise
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return _Graph(graph, static_in, static_out)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with self._lock, torch.inference_mode():
            host = self._staging(batch)
            if not self.use_graphs:
                out = self.module(self._device_input(host))
            else:
                entry = self._graphs.get(host.shape[0])
                if entry is None:
                    entry = self._graphs[host.shape[0]] = self._capture(host)
                entry.static_in.copy_(host, non_blocking=True)
                entry.graph.replay()
                out = entry.static_out
            return out.float().cpu()


def compile_cuda(module: nn.Module, backend: str, dtype: torch.dtype) -> CudaRunner:
    """Move ``module`` to CUDA in ``dtype`` and channels_last; script it for ``torchscript``."""
    module = module.eval().to("cuda", dtype)
    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if backend == "torchscript":
        module = script_module(module)
    return CudaRunner(module, dtype)
