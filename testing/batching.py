"""Fakes for the batcher's unit tests: an inference function that can hold the worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from service.engine.batcher import Batcher, Ticket

MODEL = "m"


class FakeModel:
    """Doubles its inputs; records batches; can be held at a gate to keep the worker busy."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.dispatched_at: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[Any]) -> Sequence[Any]:
        self.batches.append(list(payloads))
        self.dispatched_at.append(time.monotonic())
        self.entered.set()
        assert self.gate.wait(10)
        return [p * 2 for p in payloads]

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    async def busy(self) -> None:
        """Wait until the worker sits inside a held batch."""
        assert await asyncio.to_thread(self.entered.wait, 5)


def make(fake: Any, **kw: Any) -> Batcher:
    """A started batcher serving ``fake`` as model ``MODEL``."""
    opts: dict[str, Any] = {"max_batch_size": 4, "max_delay_s": 0.0, "max_queue": 64}
    opts.update(kw)
    b = Batcher("test-device", **opts)
    b.add_model(MODEL, fake)
    b.start()
    return b


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def submit(
    b: Batcher, payloads: list[Any], deadline: float | None = None, model: str = MODEL
) -> Ticket:
    """Admit and queue one request, as the served model does."""
    res = b.reserve(model, len(payloads), soon() if deadline is None else deadline)
    return b.submit(res, payloads)


async def occupied(fake: FakeModel, **kw: Any) -> Batcher:
    """A started batcher whose worker sits inside a held batch (the payload 0)."""
    b = make(fake, **kw)
    fake.hold()
    submit(b, [0])
    await fake.busy()
    return b
