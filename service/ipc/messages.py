"""Control messages between a front end and the engine, over one Unix socket each.

Pixels never travel here (they are in the slot ring, ``service/ipc/slots.py``): a message names
slots, a model and a deadline, or carries an answer (one float32 (n, classes) block, and for
an explanation the (n, 7, 7) maps beside it).
Framing: a 4-byte little-endian length, then the pickled message. Each side reads whatever
has arrived and decodes every whole frame in it (``Frames``), and writes several messages
as one buffer (``encode``). Both ends are processes of one tree started by the same
supervisor; nothing else can reach the socket (its directory is private to the user).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    #: None: classify; else explain each image (``service/engine/explain.py``)
    explain: Explain | None = None


@dataclass(frozen=True)
class Explain:
    """What an explanation asks for: the method and, per image, the class (None: top-1)."""

    method: str
    targets: tuple[int | None, ...]


@dataclass(frozen=True)
class Cancel:
    """The request's client went away or its deadline passed: drop what is still queued.

    The engine does not answer it: the front end has already given up on the request."""

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
    """One request's probabilities: one float32 (n, num_classes) block, and its timings."""

    rid: int
    probabilities: np.ndarray
    queue_s: float
    inference_s: float
    #: explanations only: float32 (n, h, w) maps in [0, 1] and the (n,) classes explained
    maps: np.ndarray | None = None
    targets: np.ndarray | None = None


@dataclass(frozen=True)
class Failed:
    """One request ended without an answer: ``error`` names a ``service.errors`` class."""

    rid: int
    error: str


Message = Hello | Submit | Cancel | State | Answer | Failed


class Frames:
    """Splits a byte stream into messages: ``feed`` what arrived, get every whole one."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        while len(buf) - pos >= _LEN.size:
            (size,) = _LEN.unpack_from(buf, pos)
            if size > MAX_MESSAGE:
                raise ValueError(f"control message of {size} bytes")
            end = pos + _LEN.size + size
            if end > len(buf):
                break
            out.append(pickle.loads(memoryview(buf)[pos + _LEN.size : end]))
            pos = end
        del buf[:pos]
        return out


async def read(reader: asyncio.StreamReader, frames: Frames) -> list[Message] | None:
    """Every message that has arrived (waiting for at least one), or None at the end of the
    stream (the other process is gone)."""
    while True:
        try:
            data = await reader.read(2**20)
        except ConnectionError:
            return None
        if not data:
            return None
        messages = frames.feed(data)
        if messages:
            return messages


def encode(messages: Iterable[Message]) -> bytes:
    """Several messages framed into one buffer (one write)."""
    parts: list[bytes] = []
    for message in messages:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        parts += (_LEN.pack(len(body)), body)
    return b"".join(parts)


def write(writer: asyncio.StreamWriter, *messages: Message) -> None:
    """Queue ``messages`` on ``writer`` in one write (the event loop sends it; no await)."""
    writer.write(encode(messages))
