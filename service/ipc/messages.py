"""Control messages between a front end and the engine, over one Unix socket each.

Pixels never travel here (they are in the slot ring, ``service/ipc/slots.py``): a message names
slots, a model and a deadline, or carries an answer (the probability rows, float32 bytes).
Framing: a 4-byte little-endian length, then the pickled message. Both ends are processes of
one tree started by the same supervisor; nothing else can reach the socket (its directory is
private to the user).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

_LEN = struct.Struct("<I")
MAX_MESSAGE = 256 * 2**20


# -- front end -> engine ---------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    """First message of a front end: who it is (its pid owns its slots)."""

    pid: int


@dataclass(frozen=True)
class Submit:
    """Compute one request: one image per entry of ``images`` (its slots, in order).

    An entry of one slot is a uint8 crop; one of ``slots.F32_SLOTS`` slots is a float32
    input. ``deadline`` is ``time.monotonic()`` (one clock for the whole host).
    """

    rid: int
    model: str
    images: tuple[tuple[int, ...], ...]
    deadline: float


@dataclass(frozen=True)
class Cancel:
    """The request's client went away or its deadline passed: drop what is still queued."""

    rid: int


# -- engine -> front end ---------------------------------------------------------------------
@dataclass(frozen=True)
class State:
    """What the engine serves: each model's /v1/models entry and its number of classes.

    ``ready`` is false while the engine loads, and when it stops accepting (draining).
    """

    ready: bool
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: bool = False


@dataclass(frozen=True)
class Answer:
    """One request's probability rows (float32, ``n`` x ``num_classes``) and its timings."""

    rid: int
    probabilities: bytes
    num_classes: int
    queue_s: float
    inference_s: float


@dataclass(frozen=True)
class Failed:
    """One request ended without an answer: ``error`` names a ``service.errors`` class."""

    rid: int
    error: str


Message = Hello | Submit | Cancel | State | Answer | Failed


async def read(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at the end of the stream (the other process is gone)."""
    try:
        head = await reader.readexactly(_LEN.size)
        (size,) = _LEN.unpack(head)
        if size > MAX_MESSAGE:
            raise ValueError(f"control message of {size} bytes")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message: Message = pickle.loads(body)
    return message


def write(writer: asyncio.StreamWriter, message: Message) -> None:
    """Queue ``message`` on ``writer`` (the event loop sends it; no await needed)."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_LEN.pack(len(body)) + body)
