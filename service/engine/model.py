"""One model in the engine process: loaded, compiled, warmed up, and its batch function.

``run_batch`` is the batcher's ``infer_fn``: it gathers the crops of the batch from the slot
ring into the model's one uint8 (B, 224, 224, 3) buffer (``model.compile.Feed``: pinned on
CUDA, so no staging copy), the compiled model normalises it on its device (in the ONNX graph,
OpenVINO's preprocessing, the TorchScript graph, or on the GPU after a 4x smaller copy) and
gives the probabilities (on CUDA the softmax runs in the graph): one (n, classes) block.
A batch that holds a float32 input (KServe v2 ``INPUT``) is assembled as a float batch
instead: crops normalised, float inputs gathered from their slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from model.postprocess import probabilities
from model.preprocess import normalize
from service.config import ModelSpec, Settings
from service.engine import loading
from service.ipc.slots import CROP_SHAPE, F32_SHAPE, SlotRing
from service.metrics import Metrics

#: one entry per image of a batch: the slots that hold it (1 for a crop, 4 for a float input)
SlotGroups = list[tuple[int, ...]]


class EngineModel:
    """A compiled model of the engine and what ``/v1/models`` says about it."""

    def __init__(
        self, spec: ModelSpec, settings: Settings, ring: SlotRing, metrics: Metrics
    ) -> None:
        self.name = spec.name
        self.spec, self.settings, self.ring, self.metrics = spec, settings, ring, metrics
        self.loaded: loading.Loaded | None = None
        size = settings.max_batch_size
        self._u8 = np.empty((size, *CROP_SHAPE), dtype=np.uint8)
        self._f32 = torch.empty((size, *F32_SHAPE), dtype=torch.float32)

    # -- startup (blocking, in the load thread) ---------------------------------------------
    def load(self) -> None:
        self.loaded = loading.load(self.spec, self.settings)
        self.feed = loading.feed(self.info.forward, self._u8.shape[0])
        self._u8 = self.feed.buffer  # on CUDA the runner's pinned buffer: gathered into once
        sizes = loading.warm_sizes(self.info.backend, self.info.device, self._u8.shape[0])
        loading.warm_up(self.name, self.feed.probabilities, sizes)
        self.metrics.publish_model(self.name, self.describe_labels())

    @property
    def info(self) -> loading.Loaded:
        if self.loaded is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        return self.loaded

    # -- the batch (inference thread) --------------------------------------------------------
    def run_batch(self, images: SlotGroups) -> np.ndarray:
        """The batcher's infer_fn: one entry of slots per image -> the float32 (n, classes)
        probability block."""
        busy = self.metrics.busy.timing(self.name, self.info.device)
        with busy as seconds, torch.inference_mode():
            if all(len(slots) == 1 for slots in images):
                idx = [slots[0] for slots in images]
                np.take(self.ring.pixels, idx, axis=0, out=self._u8[: len(idx)], mode="clip")
                probs = self.feed.probabilities(len(idx))
            else:
                probs = probabilities(self.info.forward(self._float_batch(images)))
        self.metrics.observe_batch(self.name, len(images), seconds())
        return probs.cpu().numpy()

    def _float_batch(self, images: SlotGroups) -> torch.Tensor:
        out = self._f32[: len(images)]
        for i, slots in enumerate(images):
            if len(slots) == 1:
                out[i] = normalize(torch.from_numpy(self.ring.crop(slots[0]))[None])[0]
            else:
                self.ring.get_f32(slots, out[i].numpy())
        return out

    # -- what it reports --------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The /v1/models entry."""
        s, info = self.settings, self.info
        return {
            "name": self.name,
            "arch": info.arch,
            "default": self.name == s.default_model,
            "parameters": info.parameters,
            "num_classes": info.num_classes,
            "weights": {
                "source": info.weights.source,
                "path": info.weights.path,
                "sha256": info.weights.sha256,
            },
            "device": info.device,
            "precision": info.precision,
            "backend": info.backend,
            "fused_sa": info.fused_sa,
            "engine": info.engine_report,
            "batching": {
                "max_batch_size": s.max_batch_size,
                "max_delay_ms": s.max_delay_ms,
                "max_queue": s.max_queue,
            },
            "input_size": [3, CROP_SHAPE[0], CROP_SHAPE[1]],
        }

    def describe_labels(self) -> dict[str, str]:
        """The labels of sanet_model_info."""
        info = self.info
        return {
            "arch": info.arch,
            "weights": info.weights.label,
            "device": info.device,
            "precision": info.precision,
            "backend": info.backend,
        }
