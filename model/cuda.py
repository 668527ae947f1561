"""The CUDA path: reduced precision, channels_last, one pinned gather buffer, bucketed graphs.

A batch is either the uint8 crop batch (B, 224, 224, 3) NHWC or a float32 (B, 3, 224, 224)
normalised batch. Either is copied as it is (uint8 moves 4x fewer bytes) and turned into the
network's input on the device: normalised in fp32 (the uint8 batch, ``model/uint8_input.py``),
then cast to fp16/bf16 and channels_last, inside the captured graph, which also ends with
the softmax: one graph computes logits and probabilities, and only what the caller asked for
is copied out, once.

Batch sizes are bucketed (:func:`buckets`: 1, 2, 4, ... up to the largest batch): a batch of
``n`` runs as the next bucket, its rows past ``n`` left as they are and their outputs
ignored (every row of the network is computed on its own, so the first ``n`` rows are those
of the unpadded batch). That is eight graphs for a largest batch of 128 instead of 128, all
drawn from one memory pool: captured largest first, the smaller ones fit in what the largest
freed. Graphs are captured on first use; the service's warm-up runs every bucket.

The engine gathers crops from the slot ring straight into the runner's one pinned buffer
(:attr:`CudaRunner.buffer`) and asks for :meth:`CudaRunner.probabilities`. The buffer goes to
the device on a side stream; the compute stream waits for that copy only, and the copy waits
only for the previous replay of the same bucket (whose input it overwrites). The engine calls
it once per batch and waits for the answer (the batcher's contract), so today copy, graph
and read-back of one batch still follow each other; what it saves is the staging copy (the
gather lands in pinned memory) and the host softmax. Without CUDA the same class runs eagerly
on the CPU (no pinning, streams or graphs), so the bucketing is tested there.

Routes for SA (``backend``): ``eager`` and ``torchscript`` run the folded block's ops as
separate kernels, ``triton`` runs them as one or two Triton kernels (``model/triton_sa.py``,
swapped in by ``compile_model``), ``inductor`` is ``torch.compile`` of the whole network.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model.scripting import script_module
from model.uint8_input import normalize_nhwc, scale_shift

CROP = (224, 224, 3)
FLOAT_INPUT = (3, 224, 224)
MAX_BATCH = 128


def buckets(max_batch: int) -> list[int]:
    """The batch sizes captured: the powers of two below ``max_batch``, then ``max_batch``."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, not {max_batch}")
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return [*sizes, max_batch]


def bucket_for(n: int, sizes: Sequence[int]) -> int:
    """The smallest bucket that holds ``n`` rows."""
    for size in sizes:
        if size >= n:
            return size
    raise ValueError(f"a batch of {n} is larger than the largest bucket ({sizes[-1]})")


@dataclass
class _Bucket:
    """One captured batch size: its input on the device, its outputs, how to run it."""

    static_in: torch.Tensor
    logits: torch.Tensor  # float32
    probs: torch.Tensor  # float32, the softmax of logits, computed in the same graph
    replay: Callable[[], None]
    done: torch.cuda.Event | None = None  # recorded after each replay (CUDA)


class CudaRunner:
    """Run ``module`` on ``device`` (default: the current CUDA device).

    Callable host batch -> float32 CPU logits; :meth:`probabilities` runs the first ``n``
    crops of :attr:`buffer` and returns their probabilities (the engine's path).
    """

    def __init__(
        self,
        module: nn.Module,
        dtype: torch.dtype,
        *,
        max_batch: int = MAX_BATCH,
        device: torch.device | str | None = None,
        use_graphs: bool = True,
    ) -> None:
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.use_graphs = use_graphs and self.cuda
        self.module, self.dtype = module, dtype
        self.max_batch, self.sizes = max_batch, buckets(max_batch)
        #: the one pinned gather buffer: crops land here from the slot ring, then the device
        self.crops = torch.empty((max_batch, *CROP), dtype=torch.uint8, pin_memory=self.cuda)
        self.buffer: np.ndarray = self.crops.numpy()
        self._floats: torch.Tensor | None = None  # KServe v2 FP32 input, made on first use
        self._buckets: dict[tuple[int, torch.dtype], _Bucket] = {}
        self._lock = threading.Lock()
        self._scale, self._shift = scale_shift(self.device)
        self._copy = torch.cuda.Stream(self.device) if self.cuda else None
        self._pool = torch.cuda.graph_pool_handle() if self.use_graphs else None

    # -- what callers use ------------------------------------------------------------------
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a host batch (uint8 crops or float32 normalised), any size."""
        parts = []
        with self._lock, torch.inference_mode():
            for start in range(0, batch.shape[0], self.max_batch):
                part = batch[start : start + self.max_batch]
                host = self._stage(part)
                parts.append(self._fetch(self._launch(host, part.shape[0]).logits, len(part)))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def probabilities(self, n: int) -> torch.Tensor:
        """Probabilities (n, classes) of the first ``n`` crops of :attr:`buffer`."""
        with self._lock, torch.inference_mode():
            return self._fetch(self._launch(self.crops, n).probs, n)

    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """A device batch as the network takes it: normalised (uint8), cast, channels_last."""
        if x.dtype == torch.uint8:  # fp32 math first: the same values as the CPU engines
            x = normalize_nhwc(x, self._scale, self._shift, channels_last=True)
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    @property
    def captured(self) -> set[tuple[int, torch.dtype]]:
        """(bucket, input dtype) of every graph captured so far."""
        return set(self._buckets)

    # -- one batch -------------------------------------------------------------------------
    def _stage(self, batch: torch.Tensor) -> torch.Tensor:
        """A host batch copied into pinned memory (the engine gathers there directly)."""
        n = batch.shape[0]
        if batch.dtype == torch.uint8:
            self.crops[:n].copy_(batch)
            return self.crops
        if self._floats is None:
            shape = (self.max_batch, *FLOAT_INPUT)
            self._floats = torch.empty(shape, dtype=torch.float32, pin_memory=self.cuda)
        self._floats[:n].copy_(batch)
        return self._floats

    def _launch(self, host: torch.Tensor, n: int) -> _Bucket:
        """Copy rows 0..n-1 of ``host`` in (side stream) and run their bucket's graph."""
        entry = self._bucket(bucket_for(n, self.sizes), host.dtype)
        with self._on_copy_stream(entry):
            entry.static_in[:n].copy_(host[:n], non_blocking=True)
        entry.replay()
        if entry.done is not None:
            entry.done.record()
        return entry

    @contextlib.contextmanager
    def _on_copy_stream(self, entry: _Bucket) -> Iterator[None]:
        if self._copy is None or entry.done is None:
            yield
            return
        self._copy.wait_event(entry.done)  # its last replay no longer reads the input
        with torch.cuda.stream(self._copy):
            yield
        torch.cuda.current_stream(self.device).wait_stream(self._copy)

    def _fetch(self, out: torch.Tensor, n: int) -> torch.Tensor:
        """Rows 0..n-1 of a device output on the host: one copy (into pinned memory)."""
        if not self.cuda:
            return out[:n].clone()
        host = torch.empty((n, *out.shape[1:]), dtype=out.dtype, pin_memory=True)
        host.copy_(out[:n], non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host

    # -- capture ---------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.module(self.network_input(x)).float()
        return logits, torch.softmax(logits, dim=1)

    def _bucket(self, size: int, dtype: torch.dtype) -> _Bucket:
        entry = self._buckets.get((size, dtype))
        if entry is None:
            entry = self._buckets[(size, dtype)] = self._capture(size, dtype)
        return entry

    def _capture(self, size: int, dtype: torch.dtype) -> _Bucket:
        shape = (size, *CROP) if dtype == torch.uint8 else (size, *FLOAT_INPUT)
        static_in = torch.zeros(shape, dtype=dtype, device=self.device)
        done = torch.cuda.Event() if self.cuda else None
        if not self.use_graphs:
            entry = _Bucket(static_in, *self._forward(static_in), replay=lambda: None, done=done)

            def run() -> None:
                entry.logits, entry.probs = self._forward(entry.static_in)

            entry.replay = run
            return entry
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # let cudnn pick algorithms and the JITs specialise
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            logits, probs = self._forward(static_in)
        return _Bucket(static_in, logits, probs, graph.replay, done)


def compile_cuda(
    module: nn.Module, backend: str, dtype: torch.dtype, max_batch: int = MAX_BATCH
) -> CudaRunner:
    """Move ``module`` (the caller's own copy) to CUDA in ``dtype`` and channels_last, then
    script it (``torchscript``) or ``torch.compile`` it (``inductor``)."""
    module = module.eval().to("cuda", dtype)
    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if backend == "torchscript":
        module = script_module(module)
    elif backend == "inductor":
        # Default mode: this runner captures the CUDA graphs itself. The first bucket
        # compiles a static graph, the second a dynamic-batch one that serves the others.
        module = torch.compile(module, fullgraph=True)  # type: ignore[assignment]
    return CudaRunner(module, dtype, max_batch=max_batch)
