"""The engine process's loop in-process: real slot ring, real socket, real EngineLink, and
models that fail the way a device can (an error on one batch, a worker that dies)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from service import errors
from service.config import Settings
from service.engine.process import Engine
from service.front.engine_client import EngineLink
from service.ipc import messages as wire
from service.ipc.slots import SlotRing
from testing.fake_model import FakeModel, Fatal
from testing.waiting import poll


async def _classify(link: EngineLink, ring: SlotRing, value: int) -> np.ndarray:
    (slot,) = ring.reserve(1, os.getpid())
    try:
        ring.crop(slot)[...] = value
        _rid, fut = link.submit("m", ((slot,),), time.monotonic() + 10)
        answer = await asyncio.wait_for(fut, 10)
        assert answer.probabilities.shape == (1, 4)
        return answer.probabilities[0]
    finally:
        ring.free([slot])


async def _a_front_end_dies_holding_slots(socket_path: Path, ring: SlotRing) -> None:
    """A front end that reserved slots (one request submitted, one still decoding) and
    went away: the engine frees every slot it held."""
    _reader, writer = await asyncio.open_unix_connection(str(socket_path))
    dead_pid = 2**22 + 7  # not a live process's pid
    wire.write(writer, wire.Hello(dead_pid))
    slots = ring.reserve(3, dead_pid)
    wire.write(writer, wire.Submit(1, "m", ((slots[0],),), time.monotonic() + 10))
    await writer.drain()
    writer.close()
    await asyncio.to_thread(poll, lambda: ring.used() == 0, 10, "the dead front end's slots")


async def _run(tmp_path: Path) -> None:
    ring = SlotRing(4, tmp_path / "lock")
    settings = Settings(models="m=sanet_tiny", max_batch_size=2, max_queue=2)
    engine = Engine(settings, ring, tmp_path / "engine.sock", model_factory=FakeModel)
    served = asyncio.create_task(engine.serve())
    link = EngineLink(tmp_path / "engine.sock", on_state=lambda _s: None)
    linked = asyncio.create_task(link.run())
    await asyncio.to_thread(poll, lambda: link.state.ready, 10, "the engine to be ready")
    assert (await _classify(link, ring, 2)).argmax() == 2
    await _a_front_end_dies_holding_slots(tmp_path / "engine.sock", ring)
    FakeModel.fail = RuntimeError("CUDA error: secret /internal/path detail")
    with pytest.raises(errors.InferenceFailed) as failed:
        await _classify(link, ring, 1)
    assert "secret" not in str(failed.value) and failed.value.status_code == 500
    FakeModel.fail = None
    assert (await _classify(link, ring, 3)).argmax() == 3  # the engine goes on serving
    FakeModel.fail = Fatal()
    with pytest.raises(errors.InferenceFailed):
        await _classify(link, ring, 1)
    assert await asyncio.wait_for(served, 10) == 1  # a dead worker ends the engine: exit 1
    await asyncio.wait_for(linked, 10)
    assert link.lost and link.state.failed  # the front end's readiness and liveness turn off
    with pytest.raises(errors.Unavailable):
        link.submit("m", ((0,),), time.monotonic() + 1)
    assert ring.used() == 0


def test_failing_batch_and_dead_worker(tmp_path: Path) -> None:
    threads = torch.get_num_threads()  # the engine sets its own: give the test process its own back
    try:
        asyncio.run(_run(tmp_path))
        assert torch.get_num_threads() == 1  # no model runs in torch on the CPU here
    finally:
        FakeModel.fail = None
        torch.set_num_threads(threads)
