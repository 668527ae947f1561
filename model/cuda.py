"""The CUDA path: reduced precision, channels_last, pinned host buffers, CUDA graphs.

A batch is either the uint8 crop batch (B, 224, 224, 3) NHWC or a float32 (B, 3, 224, 224)
normalised batch. Either is copied as it is (uint8 moves 4x fewer bytes) and turned into the
network's input on the device: normalised in fp32 (the uint8 batch, ``model/uint8_input.py``),
then cast to fp16/bf16 and channels_last, inside the captured graph. Each (batch size, input
dtype) gets its own graph on first use (the service's warm-up touches every size the batcher
can form, so no capture happens on the request path). Host-to-device copies go through a
pinned staging buffer with ``non_blocking=True``.

Routes for SA (``backend``): ``eager`` and ``torchscript`` run the folded block's ops as
separate kernels, ``triton`` runs them as one or two Triton kernels (``model/triton_sa.py``,
swapped in by ``compile_model``), ``inductor`` is ``torch.compile`` of the whole network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from model.scripting import script_module
from model.uint8_input import normalize_nhwc, scale_shift


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    static_in: torch.Tensor
    static_out: torch.Tensor


class CudaRunner:
    """Run ``module`` on the current CUDA device; callable host batch -> float32 CPU logits."""

    def __init__(self, module: nn.Module, dtype: torch.dtype, use_graphs: bool = True) -> None:
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = dtype
        self.module = module
        self.use_graphs = use_graphs
        self._graphs: dict[tuple[int, torch.dtype], _Graph] = {}
        self._pinned: dict[tuple[tuple[int, ...], torch.dtype], torch.Tensor] = {}
        self._stream = torch.cuda.Stream(self.device)
        self._lock = threading.Lock()
        self._scale, self._shift = scale_shift(self.device)

    def _staging(self, batch: torch.Tensor) -> torch.Tensor:
        dtype = torch.uint8 if batch.dtype == torch.uint8 else torch.float32
        key = (tuple(batch.shape), dtype)
        buf = self._pinned.get(key)
        if buf is None:
            buf = self._pinned[key] = torch.empty(key[0], dtype=dtype).pin_memory()
        buf.copy_(batch)
        return buf

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """A device batch as the network takes it: normalised (uint8), cast, channels_last."""
        if x.dtype == torch.uint8:  # fp32 math first: the same values as the CPU engines
            x = normalize_nhwc(x, self._scale, self._shift, channels_last=True)
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(self.network_input(x))

    def _capture(self, host: torch.Tensor) -> _Graph:
        static_in = host.to(self.device)
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            for _ in range(3):  # let cudnn pick algorithms and the JITs specialise
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(static_in)
        return _Graph(graph, static_in, static_out)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with self._lock, torch.inference_mode():
            host = self._staging(batch)
            if not self.use_graphs:
                out = self._forward(host.to(self.device, non_blocking=True))
            else:
                key = (host.shape[0], host.dtype)
                entry = self._graphs.get(key)
                if entry is None:
                    entry = self._graphs[key] = self._capture(host)
                entry.static_in.copy_(host, non_blocking=True)
                entry.graph.replay()
                out = entry.static_out
            return out.float().cpu()


def compile_cuda(module: nn.Module, backend: str, dtype: torch.dtype) -> CudaRunner:
    """Move ``module`` (the caller's own copy) to CUDA in ``dtype`` and channels_last, then
    script it (``torchscript``) or ``torch.compile`` it (``inductor``)."""
    module = module.eval().to("cuda", dtype)
    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if backend == "torchscript":
        module = script_module(module)
    elif backend == "inductor":
        # Default mode: this runner captures the CUDA graphs itself. The first batch size
        # compiles a static graph, the second a dynamic-batch one that serves every other.
        module = torch.compile(module, fullgraph=True)  # type: ignore[assignment]
    return CudaRunner(module, dtype)
