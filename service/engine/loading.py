"""Loading one served model: checkpoint (or random init), compile, warm up.

It uses ``model``'s public names and the seed of its compiled-model cache. Everything here is
blocking and runs in the engine's load thread, off its event loop.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

import model
from model.compile import Feed, HostFeed
from model.cuda import buckets
from model.export_cache import RANDOM_INIT_SEED
from service.config import ModelSpec, Settings
from service.memory import malloc_trim

log = logging.getLogger(__name__)

#: a compiled model's call: a uint8 or float batch in, logits out
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Weights:
    """Where a model's weights came from (``source`` is 'checkpoint' or 'random-init')."""

    source: str
    path: str | None = None
    sha256: str | None = None

    @property
    def label(self) -> str:
        """Short, low-cardinality value for the sanet_model_info ``weights`` label."""
        return f"sha256:{self.sha256[:12]}" if self.sha256 else self.source


@dataclass(frozen=True)
class Loaded:
    """A compiled, warmed-up network and the facts /v1/models and the metrics report."""

    forward: Forward
    arch: str
    parameters: int
    num_classes: int
    weights: Weights
    backend: str
    device: str
    precision: str
    fused_sa: bool
    engine_report: dict[str, Any] | None = None  # model.EngineReport: auto timings, int8 gate


def load(spec: ModelSpec, settings: Settings) -> Loaded:
    """Build the network and compile it (``warm_up`` runs it before readiness)."""
    if settings.backend == "null":
        return _null(spec)
    t0 = time.perf_counter()
    net, weights = build_network(spec)
    compiled, report = model.build_engine(
        net,
        settings.backend,
        device=settings.device,
        precision=settings.precision,
        threads=settings.threads,
        cache_dir=str(settings.cache_dir) if settings.cache_dir else None,
        weights_sha256=weights.sha256,  # the cache key: arch, weights, torch version
        calibration_dir=settings.calibration_dir,
        int8_min_agreement=settings.int8_min_agreement,
        bf16_min_agreement=settings.bf16_min_agreement,
        max_batch_size=settings.max_batch_size,
    )
    loaded = Loaded(
        forward=compiled,
        arch=model.arch_of(net),
        parameters=model.count_parameters(net),
        num_classes=compiled.num_classes,
        weights=weights,
        backend=str(getattr(compiled, "backend", settings.backend)),
        device=str(getattr(compiled, "device", settings.device)),
        precision=str(getattr(compiled, "precision", settings.precision)),
        fused_sa=bool(getattr(compiled, "fused", False)),
        engine_report=report.as_dict(),
    )
    del net
    log.info(
        "model %s: %s, %d parameters, backend=%s device=%s precision=%s (%.1fs)",
        spec.name,
        loaded.arch,
        loaded.parameters,
        loaded.backend,
        loaded.device,
        loaded.precision,
        time.perf_counter() - t0,
    )
    return loaded


NULL_CLASSES = 1000


def _null(spec: ModelSpec) -> Loaded:
    """The benchmark-only engine: no network, equal logits for every image."""
    log.warning("model %s: backend null, NO NETWORK RUNS (benchmarks only)", spec.name)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return torch.zeros((batch.shape[0], NULL_CLASSES))

    return Loaded(
        forward, spec.arch, 0, NULL_CLASSES, Weights("none"), "null", "cpu", "fp32", False
    )


def build_network(spec: ModelSpec) -> tuple[torch.nn.Module, Weights]:
    """``spec``'s unfolded fp32 network and where its weights came from (the compiled model
    and the explanations' copy both start here)."""
    if spec.checkpoint is None:
        log.warning(
            "!!! model %s has NO CHECKPOINT: serving RANDOM weights, predictions are "
            "meaningless. Set SANET_MODELS=%s=%s:/path/to/sa_resnet.pth.tar !!!",
            spec.name,
            spec.name,
            spec.arch,
        )
        # A fixed seed makes random-init weights (and so their compiled cache) repeatable.
        return model.random_init(spec.arch, seed=RANDOM_INIT_SEED), Weights("random-init")
    net, info = model.load_checkpoint(spec.checkpoint, arch=spec.arch)
    log.info("model %s: checkpoint %s sha256=%s", spec.name, info.path, info.sha256)
    return net, Weights("checkpoint", str(info.path), str(info.sha256))


#: engines that specialise on each input shape (TorchScript's profiling executor): every
#: batch size the batcher can form is run before readiness
PER_SHAPE_BACKENDS = frozenset({"eager", "torchscript"})


def feed(forward: Forward, max_batch_size: int) -> Feed:
    """The gather buffer and probabilities of ``forward`` (a compiled model's own; the null
    engine's on the host)."""
    if isinstance(forward, model.CompiledModel):
        return forward.feed(max_batch_size)
    return HostFeed(forward, max_batch_size)


def warm_sizes(backend: str, device: str, max_batch_size: int) -> list[int]:
    """The batch sizes to run before readiness, so no request pays for a first-time shape.

    OpenVINO runs every batch one sample at a time on one compiled shape: batch 1 covers all.
    onnxruntime has one graph for every batch size; 1 and the largest size size its buffers.
    Per-shape engines get every size (measured on the AMD EPYC: a cached OpenVINO restart
    spent 3.3 s of its 4.7 s warming sizes 1..8). CUDA captures one graph per bucket
    (``model.cuda.buckets``), largest first so the smaller ones fit in its memory pool.
    """
    if device.startswith("cuda"):
        return buckets(max_batch_size)[::-1]
    if backend in PER_SHAPE_BACKENDS:
        return list(range(1, max_batch_size + 1))
    if backend.startswith("openvino"):
        return [1]
    return sorted({1, max_batch_size})


def warm_up(name: str, run: Callable[[int], object], sizes: list[int]) -> None:
    """``run(b)`` once for each batch size ``b`` in ``sizes`` (the serving path itself)."""
    t0 = time.perf_counter()
    for b in sizes:
        with torch.inference_mode():
            run(b)
        log.info("model %s: warmed up batch size %d (%d sizes)", name, b, len(sizes))
    log.info("model %s: warm-up done (%.1fs)", name, time.perf_counter() - t0)


#: engines that run on the CPU in their own thread pools (``threads`` sizes them), not torch's
OWN_THREAD_POOLS = frozenset({"onnxruntime", "openvino", "null"})


def torch_threads(loaded: Iterable[Loaded], threads: int | None) -> int:
    """The engine's torch intra-op threads once its models are loaded.

    Where a model runs its layers in torch on the CPU it needs the cores (``threads``, or
    torch's default). Otherwise torch only does the batch's softmax and gathers, on small
    arrays: one thread, so no OpenMP worker busy-waits after each batch (measured with
    ``python -m bench.engine.socket_load``: with torch's default threads the null engine spent
    most of its CPU spinning).
    """
    for m in loaded:
        if m.device == "cpu" and m.backend.split("+")[0] not in OWN_THREAD_POOLS:
            return threads or torch.get_num_threads()
    return 1


def release_free_memory() -> None:
    """Hand memory freed during load (checkpoint, eager copies, export) back to the OS.

    glibc keeps freed heap pages mapped; after loading a 100 MB model that is ~250 MB of
    resident memory nobody uses. ``malloc_trim`` returns it (a no-op on other C libraries).
    """
    gc.collect()
    malloc_trim()
