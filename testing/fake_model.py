"""An engine model without a network, for tests of the engine's loop (in process)."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.config import ModelSpec, Settings
from service.engine.loading import Loaded, Weights
from service.ipc.slots import SlotRing


class Fatal(BaseException):
    """Escapes the worker's per-batch ``except Exception``: the thread dies."""


class FakeModel:
    """Answers one-hot rows of the crop's first byte; fails on demand."""

    fail: BaseException | None = None

    def __init__(self, spec: ModelSpec, settings: Settings, ring: SlotRing, metrics: Any) -> None:
        self.name, self.ring = spec.name, ring
        self.info = Loaded(lambda x: x, "fake", 0, 4, Weights("none"), "null", "cpu", "fp32", False)

    def load(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": 4, "input_size": [3, 224, 224]}

    def run_batch(self, images: list[tuple[int, ...]]) -> np.ndarray:
        if FakeModel.fail is not None:
            raise FakeModel.fail
        return np.eye(4, dtype=np.float32)[[int(self.ring.crop(s[0])[0, 0, 0]) % 4 for s in images]]
