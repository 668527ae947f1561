"""Inference compilation: one function per backend, each returning a :class:`CompiledModel`.

Backends: ``eager`` (reference), ``torchscript`` (scripted and frozen), ``inductor``
(``torch.compile``), ``onnxruntime`` and ``openvino`` (both from the ONNX export of the folded
graph, CPU), ``triton`` (CUDA: folded SA as Triton kernels, ``model/triton_sa.py``). Here
``auto`` is a fixed per-device default; ``model.build_engine`` measures the candidates instead
(the service's path). Folding (docs/model.md, "Folding") is applied first unless
``fold=False``. The caller's network is never changed: every engine works on its own copy.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from model.cpu import require_bf16_cpu
from model.cuda import CROP, MAX_BATCH, CudaRunner
from model.errors import EngineError, UnknownBackendError, UnknownDeviceError, UnknownPrecisionError
from model.folding import fold_model, use_fused_sa
from model.fused import load_fused_sa
from model.postprocess import probabilities
from model.preprocess import normalize
from model.sanet import SANet
from model.scripting import script_module
from model.uint8_input import UInt8Input

Runner = Callable[[torch.Tensor], torch.Tensor]
BACKENDS = ("eager", "torchscript", "onnxruntime", "openvino")  # the service's choices
SA_ROUTES = ("inductor", "triton")  # by name here; on CUDA build_engine's auto measures them
ALL_BACKENDS = BACKENDS + SA_ROUTES
EXPORTED = ("onnxruntime", "openvino")  # run from the ONNX export, on CPU only
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# bf16 on CPU: OpenVINO's bf16 hint measured faster than torch's oneDNN bf16 (docs/performance.md)
BF16_CPU_BACKENDS = ("openvino",)
# Chosen from bench/model/speed.py on the reference CPU and GPU (docs/performance.md).
AUTO_BACKEND = {"cpu": "onnxruntime", "cuda": "torchscript"}


@dataclass
class CompiledModel:
    """A callable batch -> float32 CPU logits.

    The batch is either the uint8 crop batch (B, 224, 224, 3) NHWC, normalised inside the
    engine (``run_uint8``; without one, on the host with :func:`model.preprocess.normalize`),
    or a float32 (B, 3, 224, 224) batch already normalised (``run``).
    """

    run: Runner
    backend: str
    device: str
    precision: str
    folded: bool
    num_classes: int
    fused: bool = False  # SA through the fused CPU kernel (model/fused.py)
    run_uint8: Runner | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if batch.dtype != torch.uint8:
                return self.run(batch)
            if self.run_uint8 is None:
                return self.run(normalize(batch))
            return self.run_uint8(batch)

    def feed(self, max_batch: int) -> Feed:
        """Where the caller gathers up to ``max_batch`` crops, and their probabilities: the
        CUDA runner's own pinned buffer and in-graph softmax, else a host buffer."""
        runner = self.run_uint8
        if isinstance(runner, CudaRunner) and runner.max_batch >= max_batch:
            return runner
        return HostFeed(self, max_batch)


class Feed(Protocol):
    """A gather buffer of uint8 crops (B, 224, 224, 3) and the probabilities of its rows."""

    buffer: np.ndarray

    def probabilities(self, n: int) -> torch.Tensor:
        """float32 (n, classes) on the host for the first ``n`` rows of ``buffer``."""
        ...


class HostFeed:
    """:class:`Feed` of any batch function: a host buffer, the softmax on the host."""

    def __init__(self, run: Runner, max_batch: int) -> None:
        self.run = run
        self.buffer = np.empty((max_batch, *CROP), dtype=np.uint8)

    def probabilities(self, n: int) -> torch.Tensor:
        return probabilities(self.run(torch.from_numpy(self.buffer[:n])))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UnknownDeviceError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UnknownDeviceError("device cuda asked for, but torch sees no CUDA device")
    return device


def triton_interpreting() -> bool:
    """True under ``TRITON_INTERPRET=1``: Triton kernels run on CPU tensors (tests only)."""
    return os.environ.get("TRITON_INTERPRET", "") == "1"


def resolve_backend(backend: str, device: str) -> str:
    """``auto`` -> the fixed default for ``device``; a name that cannot run there is refused."""
    if backend == "auto":
        return AUTO_BACKEND[device]
    if backend not in ALL_BACKENDS:
        raise UnknownBackendError(
            f"unknown backend {backend!r}; known: auto, {', '.join(ALL_BACKENDS)}"
        )
    if backend in EXPORTED and device != "cpu":
        raise UnknownBackendError(f"the {backend} backend runs on cpu only here")
    if backend == "triton" and device != "cuda" and not triton_interpreting():
        raise UnknownBackendError("the triton backend runs on cuda (or under TRITON_INTERPRET=1)")
    return backend


def prepare(net: nn.Module, fold: bool) -> nn.Module:
    """An eval-mode copy of ``net``, folded for an SA-ResNet (docs/model.md,
    "Folding"). Nothing of ``net`` is shared or changed: not its tensors, mode or device."""
    if fold and isinstance(net, SANet):
        return fold_model(net)
    return copy.deepcopy(net).eval()


def compile_model(
    net: nn.Module,
    backend: str = "torchscript",
    *,
    fold: bool = True,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
    fused: bool | None = None,
    max_batch_size: int = MAX_BATCH,
) -> CompiledModel:
    """Compile ``net`` for inference on ``device`` with ``backend``.

    ``threads`` bounds the intra-op threads of the onnxruntime/openvino engines (torch
    backends use the process-wide ``torch.set_num_threads``). ``cache_dir`` + ``cache_key``
    (``model.export_cache.cache_key``) let them reuse an earlier export and compiled blob. ``fused``
    (default: when it builds) runs folded SA through the fused CPU kernel on the torch
    backends.
    """
    device = resolve_device(device)
    if device == "cpu" and precision == "bf16" and backend == "auto":
        backend = BF16_CPU_BACKENDS[0]
    backend = resolve_backend(backend, device)
    _check_precision(precision, device, backend)
    num_classes = _num_classes(net)
    module = prepare(net, fold)
    use_fused = False
    if fold and device == "cpu" and backend in ("eager", "torchscript") and fused is not False:
        use_fused = load_fused_sa() and use_fused_sa(module) > 0
        if fused and not use_fused:
            raise EngineError("the fused SA kernel could not be built on this machine")
    if backend == "triton":
        from model.triton_sa import use_triton_sa

        use_triton_sa(module)
    run: Runner
    run_uint8: Runner | None
    if device == "cuda":
        from model.cuda import compile_cuda

        run = run_uint8 = compile_cuda(module, backend, PRECISIONS[precision], max_batch_size)
    elif backend in EXPORTED:
        run, run_uint8 = _compile_exported(
            module, backend, precision, threads, cache_dir, cache_key
        )
    else:
        run = run_uint8 = _compile_torch_cpu(module, backend)
    return CompiledModel(run, backend, device, precision, fold, num_classes, use_fused, run_uint8)


def _check_precision(precision: str, device: str, backend: str) -> None:
    if precision not in PRECISIONS:
        raise UnknownPrecisionError(
            f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}"
        )
    if device != "cpu" or precision == "fp32":
        return
    if precision != "bf16":
        raise UnknownPrecisionError(f"{precision} is for cuda; use fp32 or bf16 on cpu")
    if backend not in BF16_CPU_BACKENDS:
        raise UnknownPrecisionError(
            f"bf16 on cpu runs with {', '.join(BF16_CPU_BACKENDS)} (asked: {backend})"
        )
    require_bf16_cpu()


def _compile_torch_cpu(module: nn.Module, backend: str) -> Runner:
    """A torch module on CPU, the uint8 normalisation as its first op."""
    wrapped = UInt8Input(module).eval()
    if backend == "torchscript":
        return script_module(wrapped)
    if backend == "inductor":
        return torch.compile(wrapped, fullgraph=True, dynamic=False)
    return wrapped


def _compile_exported(
    module: nn.Module,
    backend: str,
    precision: str,
    threads: int | None,
    cache_dir: str | Path | None,
    cache_key: str | None,
) -> tuple[Runner, Runner]:
    """(float runner, uint8 runner) from one export; the uint8 engine normalises in-graph.

    Each engine holds its own copy of the weights, and only float32 inputs (KServe v2
    ``INPUT``) need the float one: with a cached export it is built on first use."""
    from model.export_cache import onnx_file

    build: Callable[[], Runner]
    with onnx_file(module, cache_dir, cache_key) as path:
        if backend == "openvino":
            from model.openvino_backend import compile_openvino, compile_openvino_uint8

            ov_cache = cache_dir if cache_key else None
            run_uint8: Runner = compile_openvino_uint8(
                path, threads=threads, cache_dir=ov_cache, precision=precision
            )
            build = lambda: compile_openvino(  # noqa: E731
                path, threads=threads, cache_dir=ov_cache, precision=precision
            )
        else:
            from model.onnx_backend import OrtRunner, uint8_graph

            run_uint8 = OrtRunner(uint8_graph(path), threads)
            build = lambda: OrtRunner(path, threads)  # noqa: E731
        persists = cache_dir is not None and bool(cache_key)  # else ``path`` goes with the block
        return (OnFirstUse(build) if persists else build()), run_uint8


class OnFirstUse:
    """A runner built by ``build`` at its first call (thread-safe), then reused."""

    def __init__(self, build: Callable[[], Runner]) -> None:
        self._build: Callable[[], Runner] | None = build
        self._runner: Runner | None = None
        self._lock = threading.Lock()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self._runner is None:
            with self._lock:
                if self._runner is None and self._build is not None:
                    self._runner, self._build = self._build(), None
        assert self._runner is not None
        return self._runner(batch)


def _num_classes(net: nn.Module) -> int:
    fc = getattr(net, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else -1
