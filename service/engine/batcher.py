"""Dynamic batching: one inference thread per device, one queue (lane) per model it serves.

Policy. When the worker is idle and an item is queued, it dispatches at once. While it is busy,
items accumulate; when it comes back it takes up to ``max_batch_size`` items of the lane whose
oldest item waited longest and, if the batch is not full, lingers for more only until that item
has waited ``max_delay_s``. Items whose deadline passed when the batch forms, or whose request
was cancelled, never reach the model. A side lane (``add_model(..., bound=n)``: explanations)
holds at most ``n`` items, refuses more at once (``QueueFull``), runs one item per batch and
only when no other lane waits, so it delays the other lanes by one item at most. A lane may
have a readiness callable (``ready=``): while it answers False the lane is skipped (its items
wait, and fail at their deadlines), so work it is not ready for never holds the worker; whoever
makes it ready calls ``wake()``. The worker asks it, under the lock, whenever the lane holds
items, so it must answer at once (it may start the preparation elsewhere).

Admission is otherwise decided by the slot ring (``service/ipc/slots.py``): ``submit`` refuses
when no worker can take the request (stopping or dead). The batcher calls an injected
``infer_fn(payloads) -> outputs`` per lane (one array, one entry per payload) and hands every
finished ticket to ``on_settled``, one call per batch. No HTTP, sockets or metrics here; one
lock (``self._cond``) guards every queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from service.engine.lanes import InferFn, Lane, by_readiness, first_deadline, overdue
from service.engine.tickets import Item, Ticket, deliver
from service.errors import (
    DeadlineExceeded,
    Draining,
    InferenceFailed,
    OutputMismatch,
    QueueFull,
    ServiceError,
    Unavailable,
)

log = logging.getLogger(__name__)


class Batcher:
    """The queues of the models on one device and the worker thread that runs their batches."""

    def __init__(
        self,
        name: str,
        *,
        max_batch_size: int,
        max_delay_s: float,
        on_settled: Callable[[list[Ticket]], None],
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 1.0,
    ) -> None:
        if max_batch_size < 1 or max_delay_s < 0:
            raise ValueError("max_batch_size must be >= 1, max_delay_s >= 0")
        self.name, self.on_settled = name, on_settled
        self.max_batch_size, self.max_delay_s = max_batch_size, max_delay_s
        #: called once in the worker thread, without the lock, when it has been idle for
        #: ``idle_s`` after serving work (the engine returns freed heap pages then)
        self.on_idle, self.idle_s = on_idle, idle_s
        self._idle_due = False
        self._cond = threading.Condition(threading.Lock())
        self._lanes: dict[str, Lane] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._dead = False

    def add_model(
        self,
        model: str,
        infer_fn: InferFn,
        bound: int | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        """Serve ``model`` (a lane name) here: its own queue, batches computed by ``infer_fn``;
        ``bound``: a side lane of at most that many queued items; ``ready``: whether the lane
        may run now (called with the batcher's lock held: it must not block)."""
        with self._cond:
            self._lanes[model] = Lane(model, infer_fn, bound, ready)

    def wake(self) -> None:
        """A lane's readiness may have changed: the worker looks again."""
        with self._cond:
            self._cond.notify()

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

    def stop(self, timeout: float) -> None:
        """Refuse new work, finish the queued work for up to ``timeout`` s, fail the rest."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            failed = self._fail_queued(Draining())
            self._cond.notify()  # a worker still waiting on a lane that is not ready: exit
        self._hand_over(failed)

    # -- requests (any thread) --------------------------------------------------------------
    def submit(
        self, model: str, payloads: Sequence[Any], deadline: float, tag: Any = None
    ) -> Ticket:
        """Queue one admitted request; it is settled (``on_settled``) exactly once."""
        if not payloads:
            raise ValueError("a request needs at least one payload")
        ticket = Ticket(len(payloads), deadline, tag, _pending=len(payloads))
        with self._cond:
            if self._stopping:
                raise Draining()
            if not self.alive:
                raise Unavailable()
            lane = self._lanes[model]
            if lane.bound is not None and len(lane.queue) + len(payloads) > lane.bound:
                raise QueueFull()
            lane.queue.extend(Item(ticket, p) for p in payloads)
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Drop the ticket's queued items; nobody is told (the requester gave up on it)."""
        with self._cond:
            if not ticket.settled:
                ticket.settled = True
                self._drop(ticket)

    # -- settling (lock held) ---------------------------------------------------------------
    def _drop(self, ticket: Ticket) -> None:
        for lane in self._lanes.values():
            if lane.queue and any(it.ticket is ticket for it in lane.queue):
                lane.queue = deque(it for it in lane.queue if it.ticket is not ticket)

    def _fail(self, ticket: Ticket, error: BaseException, out: list[Ticket]) -> None:
        if ticket.settled:
            return
        self._drop(ticket)
        ticket.settled, ticket.error, ticket.finished_at = True, error, time.monotonic()
        out.append(ticket)

    def _fail_queued(self, error: BaseException) -> list[Ticket]:
        out: list[Ticket] = []
        for lane in self._lanes.values():
            for ticket in {id(it.ticket): it.ticket for it in lane.queue}.values():
                self._fail(ticket, error, out)
        return out

    def _hand_over(self, tickets: list[Ticket]) -> None:
        if tickets:  # one call per batch (the engine answers a front end in one write)
            self.on_settled(tickets)

    # -- the worker thread ------------------------------------------------------------------
    def _run(self) -> None:
        current: list[Item] = []
        try:
            busy = False
            while (batch := self._next_batch(busy)) is not None:
                lane, current, expired = batch
                self._hand_over(expired + self._execute(lane, current))
                current = []
                busy = self._idle_due = True
        except BaseException:
            log.critical("inference worker %s died", self.name, exc_info=True)
        finally:
            failed: list[Ticket] = []
            with self._cond:
                self._dead = True
                for it in current:
                    self._fail(it.ticket, InferenceFailed(), failed)
                failed += self._fail_queued(Unavailable())
            self._hand_over(failed)

    def _next_batch(self, busy: bool) -> tuple[Lane, list[Item], list[Ticket]] | None:
        with self._cond:
            while True:
                now = time.monotonic()
                waiting, held = by_readiness(self._lanes.values())
                expired: list[Ticket] = []
                for ticket in overdue(held, now):  # waiting on a lane that is not ready
                    self._fail(ticket, DeadlineExceeded(), expired)
                if expired:
                    return held[0], [], expired
                main = [lane for lane in waiting if lane.bound is None]
                waiting = main or waiting  # side lanes only when no other lane waits
                if not waiting:
                    if self._stopping and not held:  # held: finish it when it is ready
                        return None
                    self._wait_for_work(first_deadline(held, now))
                    busy = False  # woken from idle: dispatch at once
                    continue
                lane = min(waiting, key=lambda ln: ln.queue[0].ticket.enqueued_at)
                linger = self._linger_s(lane, now) if busy and not self._stopping else 0.0
                if linger > 0:
                    self._cond.wait(linger)
                    continue
                items = self._take(lane, now, expired)
                if items or expired:
                    return lane, items, expired

    def _wait_for_work(self, timeout: float | None) -> None:
        """Sleep until work comes (or ``timeout`` s); after a spell of work, call ``on_idle``
        once when it has been idle ``idle_s`` (with the lock released: submits go on
        meanwhile)."""
        idle_hook = self._idle_due and self.on_idle is not None
        if not idle_hook or (timeout is not None and timeout < self.idle_s):
            self._cond.wait(timeout)
            return
        self._idle_due = self._cond.wait(self.idle_s)  # False: idle that long
        if self._idle_due or self.on_idle is None:
            return
        self._cond.release()
        try:
            self.on_idle()
        except Exception:
            log.warning("idle hook of %s failed", self.name, exc_info=True)
        finally:
            self._cond.acquire()

    def _linger_s(self, lane: Lane, now: float) -> float:
        """How much longer a partial batch may wait for company (0: dispatch now)."""
        if len(lane.queue) >= self.max_batch_size or lane.bound is not None:
            return 0.0
        return max(0.0, lane.queue[0].ticket.enqueued_at + self.max_delay_s - now)

    def _take(self, lane: Lane, now: float, expired: list[Ticket]) -> list[Item]:
        """Pop up to max_batch_size live items; a ticket past its deadline fails here."""
        batch: list[Item] = []
        size = self.max_batch_size if lane.bound is None else 1
        while lane.queue and len(batch) < size:
            item = lane.queue.popleft()
            ticket = item.ticket
            if ticket.settled:
                continue
            if ticket.deadline <= now:
                self._fail(ticket, DeadlineExceeded(), expired)
                batch = [it for it in batch if it.ticket is not ticket]
                continue
            if ticket.started_at is None:
                ticket.started_at = now
            batch.append(item)
        return batch

    def _execute(self, lane: Lane, items: list[Item]) -> list[Ticket]:
        """Run one batch; the tickets it settled."""
        if not items:  # every item taken had expired
            return []
        try:
            outputs = lane.infer_fn([it.payload for it in items])
            if len(outputs) != len(items):
                raise OutputMismatch(f"{len(outputs)} outputs for {len(items)} inputs")
        except Exception as exc:
            return self._failed_batch(lane, items, exc)
        with self._cond:
            return deliver(items, outputs)

    def _failed_batch(self, lane: Lane, items: list[Item], exc: Exception) -> list[Ticket]:
        """Fail a batch's tickets: with the lane's own verdict when ``infer_fn`` raised a
        ``ServiceError`` (it chose what the client reads), else ``InferenceFailed``."""
        own = isinstance(exc, ServiceError) and not isinstance(exc, InferenceFailed)
        if own:
            log.warning("batch of %d on %s refused: %s", len(items), lane.model, exc)
        else:
            log.error("batch of %d on %s failed", len(items), lane.model, exc_info=True)
        kind = OutputMismatch if isinstance(exc, OutputMismatch) else InferenceFailed
        failed: list[Ticket] = []
        with self._cond:
            for it in items:
                err = exc if own else kind()
                if not own:
                    err.__cause__ = exc
                self._fail(it.ticket, err, failed)
        return failed
