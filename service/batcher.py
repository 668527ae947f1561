"""Dynamic batching: one bounded queue per model, one inference worker thread per device.

Policy. When the worker is idle and an item is queued, it dispatches at once. While it is busy,
items accumulate; when it comes back it takes up to ``max_batch_size`` items and, if the batch is
not full, lingers for more only until the oldest item has waited ``max_delay_s``. Items whose
deadline passed or whose request was cancelled never reach the model. Every ticket is settled,
whatever happens: results, the batch's error, or a typed error from this module.

The batcher knows nothing of HTTP or metrics: it calls an injected ``infer_fn(payloads) ->
outputs`` (one output per payload, in order) and resolves asyncio futures with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from service.tickets import (
    BatcherError,
    BatchFailed,
    Cancelled,
    DeadlineExceeded,
    Draining,
    InferFn,
    OutputMismatch,
    QueueFull,
    Ticket,
    WorkerUnavailable,
    WorkItem,
    settle_future,
)

log = logging.getLogger(__name__)


__all__ = [
    "BatchFailed",
    "Batcher",
    "BatcherError",
    "Cancelled",
    "DeadlineExceeded",
    "Draining",
    "InferFn",
    "InferenceWorker",
    "OutputMismatch",
    "QueueFull",
    "Ticket",
    "WorkItem",
    "WorkerUnavailable",
]


class Batcher:
    """Admission and queue of one model. Its worker (shared per device) runs its batches."""

    def __init__(
        self,
        name: str,
        infer_fn: InferFn,
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        worker: InferenceWorker | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_delay_s >= 0")
        self.name = name
        self.infer_fn = infer_fn
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.worker = worker if worker is not None else InferenceWorker(f"infer-{name}")
        self.queue: deque[WorkItem] = deque()
        self.accepting = True
        self.worker.attach(self)

    # -- state ------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Items waiting in the queue (not counting the batch being computed)."""
        return len(self.queue)

    @property
    def alive(self) -> bool:
        return self.worker.alive

    def has_room(self, n: int) -> bool:
        return len(self.queue) + n <= self.max_queue

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()

    def stop(self, timeout: float) -> None:
        """Refuse new work, let the worker finish what is queued (up to ``timeout``)."""
        self.worker.stop(timeout)

    # -- admission (event-loop thread) ------------------------------------------------------
    def submit(self, payloads: Sequence[Any], deadline: float) -> Ticket:
        """Enqueue ``payloads`` as one ticket; raises at admission, never blocks."""
        loop = asyncio.get_running_loop()
        ticket = Ticket(n=len(payloads), deadline=deadline, future=loop.create_future(), loop=loop)
        if ticket.n == 0:
            raise ValueError("a ticket needs at least one payload")
        with self.worker.cond:
            if not self.accepting:
                raise Draining(self.name)
            if not self.worker.alive:
                raise WorkerUnavailable(self.name)
            if not self.has_room(ticket.n):
                raise QueueFull(self.name)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(self.name)
            self.queue.extend(WorkItem(ticket, i, p) for i, p in enumerate(payloads))
            self.worker.cond.notify()
        ticket.timer = loop.call_later(remaining, self._on_deadline, ticket)
        ticket.future.add_done_callback(lambda _f: ticket.cancel_timer())
        return ticket

    def cancel(self, ticket: Ticket, error: BatcherError | None = None) -> None:
        """Drop the ticket's queued items and settle it with ``error`` (default Cancelled)."""
        with self.worker.cond:
            self._fail(ticket, error or Cancelled(self.name))

    def _on_deadline(self, ticket: Ticket) -> None:
        # A ticket whose items all reached the model is left to finish.
        with self.worker.cond:
            if not ticket.settled and any(it.ticket is ticket for it in self.queue):
                self._fail(ticket, DeadlineExceeded(self.name))

    # -- called with worker.cond held -------------------------------------------------------
    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        ticket.finished_at = time.monotonic()
        self.queue = deque(it for it in self.queue if it.ticket is not ticket)
        self._post(ticket, error)

    def _complete(self, item: WorkItem, output: Any) -> None:
        ticket = item.ticket
        if ticket.settled:
            return
        ticket.results[item.index] = output
        ticket.pending -= 1
        if ticket.pending == 0:
            ticket.settled = True
            ticket.finished_at = time.monotonic()
            self._post(ticket, ticket.results)

    @staticmethod
    def _post(ticket: Ticket, value: list[Any] | BaseException) -> None:
        try:
            ticket.loop.call_soon_threadsafe(settle_future, ticket.future, value)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("event loop closed; dropping a ticket result")

    def take(self, now: float) -> list[WorkItem]:
        """Pop up to max_batch_size live items, failing expired tickets on the way."""
        batch: list[WorkItem] = []
        while self.queue and len(batch) < self.max_batch_size:
            item = self.queue.popleft()
            ticket = item.ticket
            if ticket.settled:
                continue
            if ticket.deadline <= now:
                self._fail(ticket, DeadlineExceeded(self.name))
                batch = [it for it in batch if it.ticket is not ticket]
                continue
            if ticket.started_at is None:
                ticket.started_at = now
            batch.append(item)
        return batch

    def linger_s(self, now: float) -> float:
        """How much longer a partial batch may wait for company (0: dispatch now)."""
        if not self.queue or len(self.queue) >= self.max_batch_size:
            return 0.0
        return max(0.0, self.queue[0].ticket.enqueued_at + self.max_delay_s - now)

    def fail_all(self, error: BaseException) -> None:
        for ticket in {id(it.ticket): it.ticket for it in self.queue}.values():
            self._fail(ticket, error)


class InferenceWorker:
    """One thread per device, serving the batchers attached to it, oldest request first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cond = threading.Condition()
        self.batchers: list[Batcher] = []
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.dead = False

    def attach(self, batcher: Batcher) -> None:
        with self.cond:
            self.batchers.append(batcher)

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive() and not self.dead

    def start(self) -> None:
        with self.cond:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()

    def stop(self, timeout: float) -> None:
        """Refuse new work, finish the queued work for up to ``timeout`` s, fail the rest."""
        with self.cond:
            self.stopping = True
            for b in self.batchers:
                b.accepting = False
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join(timeout)
        with self.cond:
            for b in self.batchers:
                b.fail_all(Draining(b.name))

    def _run(self) -> None:
        current: tuple[Batcher, list[WorkItem]] | None = None
        busy = False
        try:
            while (current := self._next_batch(busy)) is not None:
                self._execute(*current)
                busy = True
        except BaseException:
            log.critical("inference worker %s died", self.name, exc_info=True)
        finally:
            with self.cond:
                self.dead = True
                if current is not None:
                    for it in current[1]:
                        current[0]._fail(it.ticket, BatchFailed(current[0].name))
                for b in self.batchers:
                    b.fail_all(WorkerUnavailable(b.name))

    def _oldest(self) -> Batcher | None:
        waiting = [b for b in self.batchers if b.queue]
        return min(waiting, key=lambda b: b.queue[0].ticket.enqueued_at, default=None)

    def _next_batch(self, busy: bool) -> tuple[Batcher, list[WorkItem]] | None:
        with self.cond:
            while True:
                now = time.monotonic()
                batcher = self._oldest()
                if batcher is None:
                    if self.stopping:
                        return None
                    self.cond.wait()
                    busy = False  # woken from idle: dispatch at once
                    continue
                linger = batcher.linger_s(now) if busy and not self.stopping else 0.0
                if linger > 0:
                    self.cond.wait(linger)
                    continue
                items = batcher.take(now)
                if items:
                    return batcher, items

    def _execute(self, batcher: Batcher, items: list[WorkItem]) -> None:
        try:
            outputs = batcher.infer_fn([it.payload for it in items])
            if len(outputs) != len(items):
                raise OutputMismatch(f"{len(outputs)} outputs for {len(items)} inputs")
        except Exception as exc:
            log.error("batch of %d on %s failed", len(items), batcher.name, exc_info=True)
            kind = OutputMismatch if isinstance(exc, OutputMismatch) else BatchFailed
            with self.cond:
                for it in items:
                    err = kind(batcher.name)
                    err.__cause__ = exc
                    batcher._fail(it.ticket, err)
            return
        with self.cond:
            for it, out in zip(items, outputs, strict=True):
                batcher._complete(it, out)
