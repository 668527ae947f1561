"""Dynamic batching: one inference thread per device, one bounded queue per model it serves.

Policy. When the worker is idle and an item is queued, it dispatches at once. While it is busy,
items accumulate; when it comes back it takes up to ``max_batch_size`` items of the model whose
oldest item waited longest and, if the batch is not full, lingers for more only until that item
has waited ``max_delay_s``. Items whose deadline passed or whose request was cancelled never
reach the model. Every ticket is settled exactly once, whatever happens: results, the batch's
error, or a typed error.

Admission is asked here and only here (``reserve``): a request reserves room for its images
before it decodes them, so it is never refused after the work of preprocessing. The batcher
calls an injected ``infer_fn(payloads) -> outputs`` per model and knows nothing of HTTP or
metrics; one lock (``self._cond``) guards every queue and ticket.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.errors import (
    ClientClosed,
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    OutputMismatch,
    QueueFull,
    ServiceError,
    Unavailable,
)

log = logging.getLogger(__name__)

InferFn = Callable[[list[Any]], Sequence[Any]]


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

    def __post_init__(self) -> None:
        self.results = [None] * self.n
        self.pending = self.n

    def post(self, value: list[Any] | BaseException) -> None:
        """Settle the future on its own event loop (from any thread, lock held)."""
        self.settled = True
        self.finished_at = time.monotonic()
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, value)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("event loop closed; dropping a ticket result")


@dataclass(eq=False)
class _Item:
    ticket: Ticket
    index: int
    payload: Any


@dataclass(eq=False)
class _Lane:
    """The queue of one model: its items, the room promised to admitted requests, its fn."""

    model: str
    infer_fn: InferFn
    queue: deque[_Item] = field(default_factory=deque)
    reserved: int = 0


@dataclass(eq=False)
class Reservation:
    """Room for ``n`` images in one model's queue, held from admission until submit."""

    model: str
    n: int
    deadline: float
    released: bool = False


class Batcher:
    """The queues of the models on one device and the worker thread that runs their batches."""

    def __init__(
        self,
        name: str,
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_delay_s >= 0")
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        #: called once in the worker thread, without the lock, when it has been idle for
        #: ``idle_s`` after serving work (the service returns freed heap pages then)
        self.on_idle, self.idle_s = on_idle, idle_s
        self._idle_due = False
        self._cond = threading.Condition(threading.RLock())
        self._lanes: dict[str, _Lane] = {}
        self._thread: threading.Thread | None = None
        self._open = True  # accepting new requests
        self._stopping = False
        self._dead = False

    def add_model(self, model: str, infer_fn: InferFn) -> None:
        """Serve ``model`` on this device: its own queue, batches computed by ``infer_fn``."""
        with self._cond:
            self._lanes[model] = _Lane(model, infer_fn)

    # -- state ------------------------------------------------------------------------------
    def depth(self, model: str) -> int:
        """Items of ``model`` waiting in the queue (not counting the batch being computed)."""
        return len(self._lanes[model].queue)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._dead

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Refuse new requests from now on; admitted ones go on and finish."""
        with self._cond:
            self._open = False

    def stop(self, timeout: float) -> None:
        """Close, finish the queued work for up to ``timeout`` s, fail the rest (Draining)."""
        with self._cond:
            self._open = False
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            self._fail_queued(Draining())

    # -- admission (event-loop thread) ------------------------------------------------------
    def reserve(self, model: str, n: int, deadline: float) -> Reservation:
        """Admit a request of ``n`` images, or raise why not. The one place that decides."""
        with self._cond:
            if not self._open:
                raise Draining()
            res = Reservation(model, 0, deadline)
            self.resize(res, n)
            return res

    def resize(self, res: Reservation, n: int) -> None:
        """Grow or shrink a reservation to ``n`` images; growing needs a live worker, free room
        and time left (an admitted request may still grow while draining)."""
        with self._cond:
            lane = self._lanes[res.model]
            if n > res.n:
                if not self.alive:
                    raise Unavailable()
                if len(lane.queue) + lane.reserved + n - res.n > self.max_queue:
                    raise QueueFull()
                if res.deadline <= time.monotonic():
                    raise DeadlineExceeded()
            lane.reserved += n - res.n
            res.n = n

    def release(self, res: Reservation) -> None:
        """Give back what a reservation still holds (idempotent)."""
        if not res.released:
            self.resize(res, 0)
            res.released = True

    def submit(self, res: Reservation, payloads: Sequence[Any]) -> Ticket:
        """Queue ``payloads`` on the room ``res`` holds; they are computed or failed, never lost."""
        loop = asyncio.get_running_loop()
        ticket = Ticket(len(payloads), res.deadline, loop.create_future(), loop)
        if not 0 < ticket.n <= res.n or res.released:
            raise ValueError(f"{ticket.n} payloads on a reservation of {res.n}")
        with self._cond:
            lane = self._lanes[res.model]
            lane.reserved -= res.n
            res.n, res.released = 0, True
            if not self.alive:
                raise Unavailable()
            lane.queue.extend(_Item(ticket, i, p) for i, p in enumerate(payloads))
            self._cond.notify()
        timer = loop.call_later(max(0.0, res.deadline - time.monotonic()), self._expire, ticket)
        ticket.future.add_done_callback(lambda _f: timer.cancel())
        return ticket

    def cancel(self, ticket: Ticket, error: ServiceError | None = None) -> None:
        """Drop the ticket's queued items and settle it with ``error`` (default ClientClosed)."""
        with self._cond:
            self._fail(ticket, error or ClientClosed())

    def _expire(self, ticket: Ticket) -> None:
        # A ticket whose items all reached the model is left to finish.
        with self._cond:
            queued = any(it.ticket is ticket for lane in self._lanes.values() for it in lane.queue)
            if not ticket.settled and queued:
                self._fail(ticket, DeadlineExceeded())

    # -- settling (lock held) ---------------------------------------------------------------
    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        if ticket.settled:
            return
        for lane in self._lanes.values():
            if any(it.ticket is ticket for it in lane.queue):
                lane.queue = deque(it for it in lane.queue if it.ticket is not ticket)
        ticket.post(error)

    def _complete(self, item: _Item, output: Any) -> None:
        ticket = item.ticket
        if ticket.settled:
            return
        ticket.results[item.index] = output
        ticket.pending -= 1
        if ticket.pending == 0:
            ticket.post(ticket.results)

    def _fail_queued(self, error: ServiceError) -> None:
        for lane in self._lanes.values():
            for ticket in {id(it.ticket): it.ticket for it in lane.queue}.values():
                self._fail(ticket, error)

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        current: tuple[_Lane, list[_Item]] | None = None
        try:
            busy = False
            while (current := self._next_batch(busy)) is not None:
                self._execute(*current)
                busy = self._idle_due = True
        except BaseException:
            log.critical("inference worker %s died", self.name, exc_info=True)
        finally:
            with self._cond:
                self._dead = True
                for it in current[1] if current else ():
                    self._fail(it.ticket, InferenceFailed())
                self._fail_queued(Unavailable())

    def _next_batch(self, busy: bool) -> tuple[_Lane, list[_Item]] | None:
        with self._cond:
            while True:
                now = time.monotonic()
                waiting = [lane for lane in self._lanes.values() if lane.queue]
                if not waiting:
                    if self._stopping:
                        return None
                    if self._idle_due and self.on_idle is not None:
                        self._idle_due = self._cond.wait(self.idle_s)  # False: idle that long
                        if not self._idle_due:
                            self._call_idle_hook()
                    else:
                        self._cond.wait()
                    busy = False  # woken from idle: dispatch at once
                    continue
                lane = min(waiting, key=lambda ln: ln.queue[0].ticket.enqueued_at)
                linger = self._linger_s(lane, now) if busy and not self._stopping else 0.0
                if linger > 0:
                    self._cond.wait(linger)
                    continue
                items = self._take(lane, now)
                if items:
                    return lane, items

    def _call_idle_hook(self) -> None:
        """``on_idle`` with the lock released: admissions go on meanwhile (held once here)."""
        assert self.on_idle is not None
        self._cond.release()
        try:
            self.on_idle()
        except Exception:
            log.warning("idle hook of %s failed", self.name, exc_info=True)
        finally:
            self._cond.acquire()

    def _linger_s(self, lane: _Lane, now: float) -> float:
        """How much longer a partial batch may wait for company (0: dispatch now)."""
        if len(lane.queue) >= self.max_batch_size:
            return 0.0
        return max(0.0, lane.queue[0].ticket.enqueued_at + self.max_delay_s - now)

    def _take(self, lane: _Lane, now: float) -> list[_Item]:
        """Pop up to max_batch_size live items, failing expired tickets on the way."""
        batch: list[_Item] = []
        while lane.queue and len(batch) < self.max_batch_size:
            item = lane.queue.popleft()
            ticket = item.ticket
            if ticket.settled:
                continue
            if ticket.deadline <= now:
                self._fail(ticket, DeadlineExceeded())
                batch = [it for it in batch if it.ticket is not ticket]
                continue
            if ticket.started_at is None:
                ticket.started_at = now
            batch.append(item)
        return batch

    def _execute(self, lane: _Lane, items: list[_Item]) -> None:
        try:
            outputs = lane.infer_fn([it.payload for it in items])
            if len(outputs) != len(items):
                raise OutputMismatch(f"{len(outputs)} outputs for {len(items)} inputs")
        except Exception as exc:
            log.error("batch of %d on %s failed", len(items), lane.model, exc_info=True)
            kind = OutputMismatch if isinstance(exc, OutputMismatch) else InferenceFailed
            with self._cond:
                for it in items:
                    err = kind()
                    err.__cause__ = exc
                    self._fail(it.ticket, err)
            return
        with self._cond:
            for it, out in zip(items, outputs, strict=True):
                self._complete(it, out)


def _settle(fut: asyncio.Future[list[Any]], value: list[Any] | BaseException) -> None:
    if fut.done():
        return
    if isinstance(value, BaseException):
        fut.set_exception(value)
    else:
        fut.set_result(value)
