"""What the batcher hands around: tickets (one per request), queued items, typed errors.

A ticket is settled exactly once: with its results, the batch's error, or one of these.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

InferFn = Callable[[list[Any]], Sequence[Any]]


class BatcherError(Exception):
    """Base of the errors a ticket can be settled with (besides the batch's own)."""


class QueueFull(BatcherError):
    """Admission refused: the queue holds ``max_queue`` items."""


class Draining(BatcherError):
    """Admission refused, or queued work abandoned: the batcher is stopping."""


class WorkerUnavailable(BatcherError):
    """The inference worker thread is not running (never started, or died)."""


class DeadlineExceeded(BatcherError):
    """The ticket's deadline passed while some of its items were still queued."""


class Cancelled(BatcherError):
    """The caller gave up on the ticket (for instance: its client disconnected)."""


class BatchFailed(BatcherError):
    """``infer_fn`` raised; every ticket in the batch gets this, chained to the cause."""


class OutputMismatch(BatchFailed):
    """``infer_fn`` returned a different number of outputs than it was given payloads."""


@dataclass(eq=False)
class Ticket:
    """One request: ``n`` payloads answered together, in order. Settled exactly once."""

    n: int
    deadline: float  # time.monotonic()
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # first of its items handed to infer_fn
    finished_at: float | None = None
    results: list[Any] = field(default_factory=list)
    pending: int = 0
    settled: bool = False
    timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.results = [None] * self.n
        self.pending = self.n

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


@dataclass(eq=False)
class WorkItem:
    """One payload of a ticket, as it sits in the queue."""

    ticket: Ticket
    index: int
    payload: Any


def settle_future(fut: asyncio.Future[list[Any]], value: list[Any] | BaseException) -> None:
    if fut.done():
        return
    if isinstance(value, BaseException):
        fut.set_exception(value)
    else:
        fut.set_result(value)
