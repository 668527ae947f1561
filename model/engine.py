"""The one entry point the service calls: :func:`build_engine` -> (compiled model, report).

It resolves the device, takes the backend asked for or, for ``auto``, measures the candidate
engines on this machine (``model/autoselect.py``), and for ``precision="int8"`` quantizes
with the calibration images (``model/quantize.py``). The :class:`EngineReport` says what was
chosen and why; the service logs it and shows it in ``/v1/models``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from model.autoselect import Candidate, Choice, Timer, choose, decision_path
from model.compile import (
    BF16_CPU_BACKENDS,
    CompiledModel,
    compile_model,
    resolve_device,
)
from model.cpu import require_bf16_cpu
from model.errors import UnknownBackendError, UnknownModelError
from model.export_cache import cache_key as make_cache_key
from model.export_cache import cpu_info, engine_versions
from model.sanet import arch_of

log = logging.getLogger(__name__)

CPU_CANDIDATES = ("torchscript", "onnxruntime", "openvino")


@dataclass
class EngineReport:
    """What :func:`build_engine` built, for logs and ``/v1/models``."""

    backend: str
    precision: str
    device: str
    requested: str
    decision: str = "fixed"  # "measured" or "cached" for auto
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    int8: dict[str, Any] | None = None
    bf16: dict[str, Any] | None = None  # model.bf16.Bf16Report: the fidelity gate
    cache_files: list[str] = field(default_factory=list)
    build_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EngineBuild(NamedTuple):
    compiled: CompiledModel
    report: EngineReport


@dataclass(frozen=True)
class EngineOptions:
    """The knobs :func:`build_engine` passes down (one object instead of many arguments)."""

    threads: int | None = None
    cache_dir: str | Path | None = None
    cache_key: str | None = None
    calibration_dir: str | Path | None = None
    int8_min_agreement: float = 0.99
    max_batch_size: int = 8
    rounds: int = 3
    bf16_min_agreement: float = 0.99


def available_cpu_backends(precision: str = "fp32") -> list[str]:
    """CPU candidates whose engine is installed and runs ``precision``."""
    names = BF16_CPU_BACKENDS if precision == "bf16" else CPU_CANDIDATES
    return [b for b in names if b != "openvino" or importlib.util.find_spec("openvino")]


def build_engine(
    net: nn.Module,
    backend: str = "auto",
    *,
    precision: str = "fp32",
    device: str = "auto",
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
    weights_sha256: str | None = None,
    calibration_dir: str | Path | None = None,
    int8_min_agreement: float = 0.99,
    max_batch_size: int = 8,
    timer: Timer = time.perf_counter,
    bf16_min_agreement: float = 0.99,
) -> EngineBuild:
    """Compile ``net`` for serving; ``backend="auto"`` measures the candidates at start: the
    CPU engines on CPU, the SA routes (:func:`cuda_candidates`) on CUDA.

    ``cache_key`` names cached artefacts (default: from the arch and ``weights_sha256``).
    ``precision="int8"`` (CPU, OpenVINO) needs ``calibration_dir`` and refuses a model whose
    top-1 agreement with fp32 on held-out calibration images is below
    ``int8_min_agreement`` (0 disables the check). ``precision="bf16"`` on CPU needs native
    bf16 (AVX512_BF16 or AMX) and passes the same kind of gate on every calibration image
    (``bf16_min_agreement``, :mod:`model.bf16`). Raises :class:`model.ModelError` subclasses.
    """
    t0 = time.perf_counter()
    device = resolve_device(device)
    key = cache_key or make_cache_key(_arch(net), weights_sha256)
    opts = EngineOptions(
        threads, cache_dir, key, calibration_dir, int8_min_agreement, max_batch_size
    )
    opts = replace(opts, bf16_min_agreement=bf16_min_agreement)
    engine = _route(net, backend, precision, device, opts, timer)
    engine.report.build_s = round(time.perf_counter() - t0, 3)
    log.info("engine: %s", engine.report.as_dict())
    return engine


def _route(
    net: nn.Module, backend: str, precision: str, device: str, opts: EngineOptions, timer: Timer
) -> EngineBuild:
    """The build path for this precision, device and backend."""
    if precision == "int8":
        return _int8(net, backend, device, opts)
    if precision == "bf16" and device == "cpu":
        return _bf16_cpu(net, backend, opts, timer)
    if backend == "auto" and device == "cpu":
        return _auto_cpu(net, precision, opts, timer)
    if backend == "auto":
        return _auto_cuda(net, precision, opts, timer)
    compiled = _compile(net, backend, device, precision, opts)
    return EngineBuild(compiled, EngineReport(backend, precision, device, backend))


def _arch(net: nn.Module) -> str:
    try:
        return arch_of(net)
    except UnknownModelError:
        return type(net).__name__


def _compile(
    net: nn.Module, backend: str, device: str, precision: str, opts: EngineOptions
) -> CompiledModel:
    return compile_model(
        net,
        backend,
        device=device,
        precision=precision,
        threads=opts.threads,
        cache_dir=opts.cache_dir,
        cache_key=opts.cache_key,
        max_batch_size=max(1, opts.max_batch_size),
    )


def _fingerprint(opts: EngineOptions, precision: str) -> dict[str, Any]:
    return {
        "cpu": cpu_info(),
        "engines": engine_versions(),
        "threads": opts.threads,
        "batches": [1, opts.max_batch_size],
        "precision": precision,
    }


def _auto_cpu(net: nn.Module, precision: str, opts: EngineOptions, timer: Timer) -> EngineBuild:
    with contextlib.ExitStack() as stack:
        if opts.cache_dir is None:  # one export shared by the candidates, then dropped
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sanet-auto-"))
            opts = EngineOptions(**{**asdict(opts), "cache_dir": tmp})
            decision = None
        else:
            assert opts.cache_key is not None
            decision = decision_path(opts.cache_dir, opts.cache_key, _fingerprint(opts, precision))
        candidates = [
            Candidate(b, _builder(net, b, precision, opts))
            for b in available_cpu_backends(precision)
        ]
        batches = sorted({1, opts.max_batch_size})
        compiled, choice = choose(
            candidates, batches=batches, rounds=opts.rounds, decision_file=decision, timer=timer
        )
    return EngineBuild(compiled, _auto_report(choice, precision))


def _builder(
    net: nn.Module, backend: str, precision: str, opts: EngineOptions, device: str = "cpu"
) -> Any:
    return lambda: _compile(net, backend, device, precision, opts)


def cuda_candidates() -> list[str]:
    """The CUDA routes ``auto`` measures: TorchScript, and Triton SA and inductor when the
    ``triton`` package is installed (both need it on CUDA)."""
    has_triton = importlib.util.find_spec("triton") is not None
    return ["torchscript", *(["triton", "inductor"] if has_triton else [])]


def _auto_cuda(net: nn.Module, precision: str, opts: EngineOptions, timer: Timer) -> EngineBuild:
    """``auto`` on CUDA: measure the SA routes at start (the decision is cached like on CPU,
    keyed by the GPU, the engine versions and the batch sizes, so a restart builds one)."""
    import torch

    decision = None
    if opts.cache_dir is not None and opts.cache_key is not None:
        fingerprint = {**_fingerprint(opts, precision), "gpu": torch.cuda.get_device_name()}
        fingerprint["torch"] = torch.__version__
        decision = decision_path(opts.cache_dir, opts.cache_key, fingerprint)
    candidates = [
        Candidate(b, _builder(net, b, precision, opts, "cuda")) for b in cuda_candidates()
    ]
    batches = sorted({1, opts.max_batch_size})
    compiled, choice = choose(
        candidates, batches=batches, rounds=opts.rounds, decision_file=decision, timer=timer
    )
    return EngineBuild(compiled, _auto_report(choice, precision, "cuda"))


def _auto_report(choice: Choice, precision: str, device: str = "cpu") -> EngineReport:
    files = [choice.path] if choice.path else []
    return EngineReport(
        choice.backend,
        precision,
        device,
        "auto",
        choice.source,
        choice.timings_ms,
        cache_files=files,
    )


def _bf16_cpu(net: nn.Module, backend: str, opts: EngineOptions, timer: Timer) -> EngineBuild:
    """bf16 on a CPU that has it: the engine (``auto``: timed among those that run bf16),
    then the fidelity gate against the fp32 network on the calibration images."""
    from model.bf16 import bf16_gate

    require_bf16_cpu()  # before any export or timing
    if backend == "auto":
        engine = _auto_cpu(net, "bf16", opts, timer)
    else:
        compiled = _compile(net, backend, "cpu", "bf16", opts)
        engine = EngineBuild(compiled, EngineReport(backend, "bf16", "cpu", backend))
    gate = bf16_gate(
        net,
        engine.compiled,
        calibration_dir=opts.calibration_dir,
        min_agreement=opts.bf16_min_agreement,
    )
    engine.report.bf16 = gate.as_dict()
    return engine


def _int8(net: nn.Module, backend: str, device: str, opts: EngineOptions) -> EngineBuild:
    if device != "cpu" or backend not in ("auto", "openvino"):
        raise UnknownBackendError(
            f"int8 runs on cpu with the openvino backend (asked: {backend} on {device})"
        )
    from model.quantize import int8_engine

    compiled, info = int8_engine(
        net,
        calibration_dir=opts.calibration_dir,
        min_agreement=opts.int8_min_agreement,
        threads=opts.threads,
        cache_dir=opts.cache_dir,
        cache_key=opts.cache_key,
    )
    report = EngineReport("openvino", "int8", "cpu", backend, int8=info.as_dict())
    report.cache_files = [info.path] if info.path else []
    return EngineBuild(compiled, report)
