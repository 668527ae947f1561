"""A lane of the batcher (one model's queue, or a bounded side lane) and what the worker asks
of its lanes: which may run now, which of the others' items are overdue and when the next one
will be."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.engine.tickets import Item, Ticket

InferFn = Callable[[list[Any]], np.ndarray]


@dataclass(eq=False)
class Lane:
    model: str
    infer_fn: InferFn
    bound: int | None = None  # a side lane: at most this many items queued
    #: whether the lane may run now (None: always); asked under the batcher's lock
    ready: Callable[[], bool] | None = None
    queue: deque[Item] = field(default_factory=deque)


def by_readiness(lanes: Iterable[Lane]) -> tuple[list[Lane], list[Lane]]:
    """The lanes holding items: those that may run now, and those not ready."""
    runnable: list[Lane] = []
    held: list[Lane] = []
    for lane in lanes:
        if lane.queue:
            (runnable if lane.ready is None or lane.ready() else held).append(lane)
    return runnable, held


def overdue(lanes: list[Lane], now: float) -> list[Ticket]:
    """The tickets of ``lanes``' items whose deadline has passed (each once)."""
    late = {id(it.ticket): it.ticket for ln in lanes for it in ln.queue}
    return [ticket for ticket in late.values() if ticket.deadline <= now]


def first_deadline(lanes: list[Lane], now: float) -> float | None:
    """Seconds until the first deadline among ``lanes``' items (None: they hold none)."""
    deadlines = [it.ticket.deadline for lane in lanes for it in lane.queue]
    return max(0.0, min(deadlines) - now) if deadlines else None
