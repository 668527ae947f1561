"""Fakes for the batcher's unit tests: a model that can hold the worker, and a harness that
turns settled tickets into futures on the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from service.engine.batcher import Batcher, Ticket

MODEL = "m"
#: the longest any test waits for one thing before it fails, naming it
WAIT_S = 10.0


class FakeModel:
    """Doubles its inputs; records batches; can be held at a gate to keep the worker busy."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[Any]) -> np.ndarray:
        self.batches.append(list(payloads))
        self.entered.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never released the held batch")
        return np.asarray(payloads) * 2

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    async def busy(self) -> None:
        """Wait until the worker sits inside a held batch."""
        if not await asyncio.to_thread(self.entered.wait, WAIT_S):
            raise AssertionError("the worker never entered the held batch")


class Harness:
    """A started batcher serving ``fn`` as ``MODEL``; each submit gives a future of the
    ticket's rows (a list) or its error, resolved on the test's loop."""

    def __init__(self, fn: Callable[[list[Any]], Any], **kw: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.futures: dict[int, asyncio.Future[list[Any]]] = {}
        self.tickets: dict[int, Ticket] = {}
        opts: dict[str, Any] = {"max_batch_size": 4, "max_delay_s": 0.0}
        opts.update(kw)
        self.batcher = Batcher("test-device", on_settled=self._settled, **opts)
        self.batcher.add_model(MODEL, fn)
        self.batcher.start()
        self.fakes = [fn] if isinstance(fn, FakeModel) else []

    def add_model(
        self,
        model: str,
        fn: Callable[[list[Any]], Any],
        bound: int | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.batcher.add_model(model, fn, bound, ready)
        if isinstance(fn, FakeModel):
            self.fakes.append(fn)

    def release(self) -> None:
        """Let every held batch go (teardown)."""
        for fake in self.fakes:
            fake.gate.set()

    def submit(
        self, payloads: list[Any], deadline: float | None = None, model: str = MODEL
    ) -> asyncio.Future[list[Any]]:
        deadline = time.monotonic() + 60 if deadline is None else deadline
        ticket = self.batcher.submit(model, payloads, deadline)
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        self.futures[id(ticket)] = fut
        self.tickets[id(fut)] = ticket
        return fut

    def cancel(self, fut: asyncio.Future[list[Any]]) -> None:
        self.batcher.cancel(self.tickets[id(fut)])

    def _settled(self, tickets: list[Ticket]) -> None:
        # RuntimeError: the test's loop is closed (teardown), nobody is waiting
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._resolve, tickets)

    def _resolve(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            fut = self.futures.pop(id(ticket), None)
            if fut is None:  # submitted to the batcher directly, not through this harness
                continue
            if ticket.error is not None:
                fut.set_exception(ticket.error)
            else:
                assert ticket.output is not None
                fut.set_result(np.asarray(ticket.output).tolist())


async def answer(fut: asyncio.Future[list[Any]], what: str = "the answer") -> list[Any]:
    """The future's result, or a failure naming ``what`` after ``WAIT_S``."""
    try:
        return await asyncio.wait_for(asyncio.shield(fut), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT_S:g}s waiting for {what}") from None


async def occupied(h: Harness, fake: FakeModel) -> asyncio.Future[list[Any]]:
    """Put ``h``'s worker inside a held batch (the payload 0); that batch's future."""
    fake.hold()
    first = h.submit([0])
    await fake.busy()
    return first
