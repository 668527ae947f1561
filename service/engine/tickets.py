"""A request in the batcher (``Ticket``), one of its payloads (``Item``), and how a finished
batch's outputs are handed to the tickets it served (``deliver``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class Ticket:
    """One request: ``n`` payloads answered together as one block, in order.

    Settled once: ``output`` (the ``n`` rows) or ``error``. ``tag`` is the caller's (who to
    answer); the batcher never reads it.
    """

    n: int
    deadline: float  # time.monotonic()
    tag: Any = None
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None  # first of its items handed to infer_fn
    finished_at: float | None = None
    output: np.ndarray | None = None
    error: BaseException | None = None
    settled: bool = False
    _parts: list[np.ndarray] = field(default_factory=list)
    _pending: int = 0


@dataclass(eq=False)
class Item:
    ticket: Ticket
    payload: Any


def deliver(items: list[Item], outputs: np.ndarray) -> list[Ticket]:
    """Give each ticket its rows of ``outputs``: a slice when the whole request was in this
    batch, else the parts joined once the last one arrives. The tickets now complete."""
    done: list[Ticket] = []
    start, now = 0, time.monotonic()
    while start < len(items):
        ticket = items[start].ticket
        end = start + 1
        while end < len(items) and items[end].ticket is ticket:
            end += 1
        if not ticket.settled:
            ticket._parts.append(outputs[start:end])
            ticket._pending -= end - start
            if ticket._pending == 0:
                parts = ticket._parts
                ticket.output = parts[0] if len(parts) == 1 else np.concatenate(parts)
                ticket.settled, ticket.finished_at, ticket._parts = True, now, []
                done.append(ticket)
        start = end
    return done
