"""One served model: load (checkpoint or random init), compile, warm up, run batches.

Only the public names of ``model`` are used. Everything here is blocking and runs off the
event loop (startup in a thread, batches in the inference worker).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

import model
from service.config import ModelSpec, Settings
from service.metrics import Metrics

log = logging.getLogger(__name__)

INPUT_SHAPE = (3, 224, 224)
RANDOM_INIT_SEED = 0


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


class ModelRuntime:
    """A compiled model plus what /v1/models reports about it."""

    def __init__(self, spec: ModelSpec, settings: Settings, metrics: Metrics) -> None:
        self.name = spec.name
        self.spec = spec
        self.settings = settings
        self.metrics = metrics
        self.compiled: Any = None
        self.engine: model.EngineReport | None = None
        self.weights = Weights("random-init")
        self.arch = spec.arch
        self.parameters = 0
        self.num_classes = 0
        self.labels: tuple[str, ...] = ()

    def load(self) -> None:
        """Build the network, compile it and run every batch size the batcher can form."""
        t0 = time.perf_counter()
        net = self._build()
        self.arch = model.arch_of(net)
        self.parameters = model.count_parameters(net)
        s = self.settings
        self.compiled, self.engine = model.build_engine(
            net,
            s.backend,
            device=s.device,
            precision=s.precision,
            threads=s.threads,
            cache_dir=str(s.cache_dir) if s.cache_dir else None,
            cache_key=self._cache_key(),
            calibration_dir=s.calibration_dir,
            int8_min_agreement=s.int8_min_agreement,
            max_batch_size=s.max_batch_size,
        )
        self.num_classes = self.compiled.num_classes
        self.labels = _labels(self.num_classes)
        log.info(
            "model %s: %s, %d parameters, backend=%s device=%s precision=%s (%.1fs)",
            self.name,
            self.arch,
            self.parameters,
            self.backend,
            self.device,
            self.precision,
            time.perf_counter() - t0,
        )
        self.warm_up()

    def _build(self) -> torch.nn.Module:
        if self.spec.checkpoint is None:
            log.warning(
                "!!! model %s has NO CHECKPOINT: serving RANDOM weights, predictions are "
                "meaningless. Set SANET_MODELS=%s=/path/to/sa_resnet.pth.tar !!!",
                self.name,
                self.spec.arch,
            )
            # A fixed seed makes random-init weights (and so their compiled cache) repeatable.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                return model.create_model(self.spec.arch)
        net = model.load_checkpoint(self.spec.checkpoint, arch=self.spec.arch)
        info: Any = getattr(net, "checkpoint_info")  # noqa: B009 - set by load_checkpoint
        self.weights = Weights("checkpoint", str(info.path), str(info.sha256))
        log.info("model %s: checkpoint %s sha256=%s", self.name, info.path, info.sha256)
        return net

    def _cache_key(self) -> str:
        """Names a compiled artefact: same weights, arch and torch version -> same key."""
        weights = self.weights.sha256 or f"random{RANDOM_INIT_SEED}"
        return f"{self.spec.arch}-{weights}-torch{torch.__version__}"

    def warm_up(self) -> None:
        sizes = range(1, self.settings.max_batch_size + 1)
        t0 = time.perf_counter()
        for b in sizes:
            with torch.inference_mode():
                self.compiled(torch.zeros((b, *INPUT_SHAPE)))
            log.info("model %s: warmed up batch size %d/%d", self.name, b, len(sizes))
        log.info("model %s: warm-up done (%.1fs)", self.name, time.perf_counter() - t0)

    def infer(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The batcher's infer_fn: a list of (3,224,224) tensors -> one probability row each."""
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits = self.compiled(torch.stack(images))
            probs = torch.softmax(logits.float(), dim=1)
        self.metrics.observe_batch(self.name, len(images), time.perf_counter() - t0)
        return list(probs.unbind(0))

    @property
    def backend(self) -> str:
        return str(getattr(self.compiled, "backend", "unknown"))

    @property
    def device(self) -> str:
        return str(getattr(self.compiled, "device", "unknown"))

    @property
    def precision(self) -> str:
        return str(getattr(self.compiled, "precision", self.settings.precision))

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "name": self.name,
            "arch": self.arch,
            "default": self.name == s.default_model,
            "parameters": self.parameters,
            "num_classes": self.num_classes,
            "weights": {
                "source": self.weights.source,
                "path": self.weights.path,
                "sha256": self.weights.sha256,
            },
            "device": self.device,
            "precision": self.precision,
            "backend": self.backend,
            "fused_sa": bool(getattr(self.compiled, "fused", False)),
            "engine": self.engine.as_dict() if self.engine else None,
            "batching": {
                "max_batch_size": s.max_batch_size,
                "max_delay_ms": s.max_delay_ms,
                "max_queue": s.max_queue,
            },
            "input_size": list(INPUT_SHAPE),
        }

    def publish_info(self) -> None:
        self.metrics.model_info.labels(
            model=self.name,
            arch=self.arch,
            weights=self.weights.label,
            device=self.device,
            precision=self.precision,
            backend=self.backend,
        ).set(1)


def _labels(num_classes: int) -> tuple[str, ...]:
    if num_classes == len(model.IMAGENET_CLASSES):
        return tuple(model.IMAGENET_CLASSES)
    return tuple(f"class_{i}" for i in range(num_classes))


def release_free_memory() -> None:
    """Hand memory freed during load (checkpoint, eager copies, export) back to the OS.

    glibc keeps freed heap pages mapped; after loading a 100 MB model that is ~250 MB of
    resident memory nobody uses. ``malloc_trim`` returns it (a no-op on other C libraries).
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)
