"""The engine's explanation lane in-process (real engine, slot ring, socket and EngineLink;
the real explainer, whose lazy build the test holds at a gate): classifications go on while
the first explanation's network builds, and a failed build answers a clear 503."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from service import errors
from service.config import ModelSpec, Settings
from service.engine import explain
from service.engine.process import Engine
from service.front.engine_client import EngineLink
from service.ipc import messages as wire
from service.ipc.slots import SlotRing
from testing.batching import WAIT_S
from testing.fake_model import FakeModel
from testing.waiting import poll


class HeldBuild:
    """``loading.build_network`` for the explainer, held until ``gate`` is set; fails while
    ``fail`` is set."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.started, self.gate, self.fail = threading.Event(), threading.Event(), False
        self.builds = 0

    def __call__(self, spec: ModelSpec) -> Any:
        self.builds += 1
        self.started.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("the test never released the build")
        if self.fail:
            raise RuntimeError("out of memory (the test's)")
        return self.real(spec)


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldBuild]:
    held = HeldBuild(explain.loading.build_network)
    monkeypatch.setattr(explain.loading, "build_network", held)
    threads = torch.get_num_threads()  # the engine sets its own: give the test's back
    yield held
    held.gate.set()
    torch.set_num_threads(threads)


@asynccontextmanager
async def _engine(tmp_path: Path) -> AsyncIterator[tuple[EngineLink, SlotRing]]:
    ring = SlotRing(4, tmp_path / "lock")
    settings = Settings(models="m=sanet_tiny", backend="eager", explain="lazy", max_batch_size=2)
    engine = Engine(settings, ring, tmp_path / "engine.sock", model_factory=FakeModel)
    served = asyncio.create_task(engine.serve())
    link = EngineLink(tmp_path / "engine.sock", on_state=lambda _s: None)
    linked = asyncio.create_task(link.run())
    try:
        await asyncio.to_thread(poll, lambda: link.state.ready, WAIT_S, "the engine to be ready")
        yield link, ring
    finally:
        engine._stop.set()  # SIGTERM's path, without signalling the test process
        assert await asyncio.wait_for(served, WAIT_S) == 0
        linked.cancel()


def _submit(link: EngineLink, slot: int, explained: bool) -> asyncio.Future[wire.Answer]:
    spec = wire.Explain("gradcam", (None,)) if explained else None
    return link.submit("m", ((slot,),), time.monotonic() + 2 * WAIT_S, spec)[1]


async def _first_explanation_and_a_classification(
    link: EngineLink, ring: SlotRing, build: HeldBuild
) -> None:
    ex_slot, cl_slot = ring.reserve(2, os.getpid())
    ring.crop(cl_slot)[...] = 2
    explained = _submit(link, ex_slot, explained=True)
    assert await asyncio.to_thread(build.started.wait, WAIT_S), "the build never started"
    classified = await asyncio.wait_for(_submit(link, cl_slot, explained=False), WAIT_S)
    assert classified.probabilities[0].argmax() == 2
    assert not explained.done()  # its network is still building
    build.gate.set()
    done = await asyncio.wait_for(explained, WAIT_S)
    assert done.maps is not None and done.maps.shape == (1, 7, 7)
    ring.free([ex_slot, cl_slot])


def test_a_classification_is_answered_while_the_first_explanation_builds(
    tmp_path: Path, build: HeldBuild
) -> None:
    async def run() -> None:
        async with _engine(tmp_path) as (link, ring):
            await _first_explanation_and_a_classification(link, ring, build)
            assert build.builds == 1

    asyncio.run(run())


async def _explain_fails(link: EngineLink, slot: int) -> None:
    with pytest.raises(errors.ExplainUnavailable) as failed:
        await asyncio.wait_for(_submit(link, slot, explained=True), WAIT_S)
    assert failed.value.status_code == 503 and failed.value.retry_after_s


def test_a_failed_build_fails_clearly_then_builds_again_after_the_pause(
    tmp_path: Path, build: HeldBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> None:
        async with _engine(tmp_path) as (link, ring):
            (slot,) = ring.reserve(1, os.getpid())
            build.fail = True
            build.gate.set()
            await _explain_fails(link, slot)  # the build it started failed
            await _explain_fails(link, slot)  # within RETRY_S: at once, no new build
            assert build.builds == 1
            monkeypatch.setattr(explain, "RETRY_S", 0.0)
            build.fail = False
            done = await asyncio.wait_for(_submit(link, slot, explained=True), WAIT_S)
            assert done.maps is not None and build.builds == 2
            ring.free([slot])

    asyncio.run(run())
