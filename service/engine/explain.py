"""A served model's explanations: its lane of the batcher, on a differentiable fp32 copy.

The copy is the authors' unfolded network (``model.explain.Explainer``), built from the same
checkpoint (or the same random-init seed) as the compiled one, on the engine's device. It is
built when the first explanation runs (``SANET_EXPLAIN=lazy``) or at start (``eager``). A
batch's answer is one structured array, one record per image (``probs``, ``map``,
``target``), so the batcher slices and joins it like any other block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.explain import Explainer
from model.preprocess import normalize
from service import errors
from service.config import ModelSpec, Settings
from service.engine import loading
from service.ipc import messages as wire
from service.ipc.slots import SlotRing

log = logging.getLogger(__name__)

#: the last stage's grid of a 224 x 224 crop
MAP_SHAPE = (7, 7)


@dataclass(frozen=True)
class Payload:
    """One image of an explanation: its slot, the method, the class (None: the top-1)."""

    slot: int
    method: str
    target: int | None


def lane(model: str) -> str:
    """The batcher lane of ``model``'s explanations (a model name never holds ':')."""
    return f"{model}:explain"


class EngineExplainer:
    """Explanations of one served model: the fp32 network (built once) and the batch run."""

    def __init__(self, spec: ModelSpec, settings: Settings, ring: SlotRing, device: str) -> None:
        self.spec, self.settings, self.ring, self.device = spec, settings, ring, device
        #: the engine may drop torch to one thread once loaded (its models run in their own
        #: pools); an explanation runs in torch, so on the CPU it takes the cores back
        self.threads = settings.threads or torch.get_num_threads()
        self._explainer: Explainer | None = None
        self._lock = threading.Lock()

    def load(self) -> Explainer:
        """The explainer, built on first use (thread-safe; blocking)."""
        with self._lock:
            if self._explainer is None:
                t0 = time.perf_counter()
                net, _weights = loading.build_network(self.spec)
                self._explainer = Explainer(net.to(self.device))
                log.info(
                    "model %s: fp32 network for explanations on %s (%.1fs)",
                    self.spec.name,
                    self.device,
                    time.perf_counter() - t0,
                )
            return self._explainer

    def run_batch(self, payloads: Sequence[Payload]) -> np.ndarray:
        """The batcher's infer_fn for the explanation lane: one record per payload."""
        explainer = self.load()
        out = np.zeros(len(payloads), dtype=record_dtype(explainer.num_classes))
        before = torch.get_num_threads()
        if self.device == "cpu" and before < self.threads:
            torch.set_num_threads(self.threads)
        try:
            self._explain(explainer, payloads, out)
        finally:
            torch.set_num_threads(before)
        return out

    def _explain(self, explainer: Explainer, payloads: Sequence[Payload], out: np.ndarray) -> None:
        crops = torch.from_numpy(self.ring.pixels[[p.slot for p in payloads]])
        batch = normalize(crops.to(self.device))
        for method in {p.method for p in payloads}:
            rows = [i for i, p in enumerate(payloads) if p.method == method]
            done = explainer.explain(batch[rows], method, [payloads[i].target for i in rows])
            for i, e in zip(rows, done, strict=True):
                out[i] = (e.probabilities.cpu().numpy(), e.heatmap.cpu().numpy(), e.target)


def payloads(message: wire.Submit) -> list[Payload]:
    """The lane's payloads of an explanation request (one crop slot per image)."""
    spec = message.explain
    if spec is None or len(spec.targets) != len(message.images):
        raise errors.InvalidParameter("one target per image")
    if any(len(slots) != 1 for slots in message.images):
        raise errors.InvalidParameter("explanations take encoded images")
    return [
        Payload(s[0], spec.method, t) for s, t in zip(message.images, spec.targets, strict=True)
    ]


def answer(rid: int, block: np.ndarray, queue_s: float, inference_s: float) -> wire.Answer:
    """The wire's answer for a block of records (``record_dtype``)."""
    return wire.Answer(
        rid, block["probs"], queue_s, inference_s, maps=block["map"], targets=block["target"]
    )


def record_dtype(num_classes: int) -> np.dtype:
    """One explained image: its probabilities, its map and the class explained."""
    return np.dtype(
        [("probs", np.float32, (num_classes,)), ("map", np.float32, MAP_SHAPE), ("target", "i8")]
    )
