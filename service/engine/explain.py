"""A served model's explanations: its lane of the batcher, on a differentiable fp32 copy.

The copy is the authors' unfolded network (``model.explain.Explainer``), built from the same
checkpoint (or the same random-init seed) as the compiled one, on the engine's device. It is
built at start (``eager``) or, with ``SANET_EXPLAIN=lazy``, in a thread of its own when the
first explanation waits in the lane: the lane is not ready meanwhile (``ready``), so the
inference thread goes on classifying, and the build's end wakes the batcher. A build that
fails fails the explanations waiting for it and those of the next ``RETRY_S`` seconds at once
(503 ``explain_unavailable``); the first explanation after that builds again. A batch's
answer is one structured array, one record per image (``probs``, ``map``, ``target``), so the
batcher slices and joins it like any other block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
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

#: how long after a failed build explanations fail at once before one builds again
RETRY_S = float(errors.ExplainUnavailable.retry_after_s or 30)

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

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        ring: SlotRing,
        device: str,
        on_built: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_built``: called (in the build's thread) when a background build ends."""
        self.spec, self.settings, self.ring, self.device = spec, settings, ring, device
        self.on_built = on_built
        #: the engine may drop torch to one thread once loaded (its models run in their own
        #: pools); an explanation runs in torch, so on the CPU it takes the cores back
        self.threads = settings.threads or torch.get_num_threads()
        self._explainer: Explainer | None = None
        self._building = False
        self._failed_at: float | None = None
        self._lock = threading.Lock()  # never held while building

    def load(self) -> None:
        """Build the network in this thread (``eager``, at start); raises if that fails."""
        built = self._build()
        with self._lock:
            self._explainer = built

    def ready(self) -> bool:
        """The lane's readiness; the batcher asks under its lock, so this answers at once.

        True once built, and for ``RETRY_S`` after a failed build (``run_batch`` then fails
        each waiting item at once). Otherwise it starts the build in a background thread
        (one at a time) and answers False until the build ends and calls ``on_built``.
        """
        with self._lock:
            if self._explainer is not None or self._building:
                return self._explainer is not None
            if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_S:
                return True
            self._building = True
        builder = threading.Thread(
            target=self._build_aside, name="sanet-explain-build", daemon=True
        )
        try:
            builder.start()
        except RuntimeError:  # no thread to be had: a failed build (the worker must live on)
            log.error("model %s: no thread to build explanations in", self.spec.name)
            with self._lock:
                self._building, self._failed_at = False, time.monotonic()
            return True
        return False

    def _build_aside(self) -> None:
        built: Explainer | None = None
        try:
            built = self._build()
        except Exception:
            log.error(
                "model %s: building the network for explanations failed; they answer 503 "
                "for %gs, then the next one builds again",
                self.spec.name,
                RETRY_S,
                exc_info=True,
            )
        finally:
            with self._lock:
                self._explainer, self._building = built, False
                self._failed_at = None if built is not None else time.monotonic()
            self.on_built()

    def _build(self) -> Explainer:
        t0 = time.perf_counter()
        net, _weights = loading.build_network(self.spec)
        built = Explainer(net.to(self.device))
        log.info(
            "model %s: fp32 network for explanations on %s (%.1fs)",
            self.spec.name,
            self.device,
            time.perf_counter() - t0,
        )
        return built

    def run_batch(self, payloads: Sequence[Payload]) -> np.ndarray:
        """The batcher's infer_fn for the explanation lane: one record per payload. The lane
        runs only when ``ready``: without the network, the last build failed."""
        explainer = self._explainer
        if explainer is None:
            raise errors.ExplainUnavailable()
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
