"""An autoscaling scenario with real parts: load phases, live replicas, a replayed HPA.

``Ramp`` is a closed-loop load generator: ``level`` worker threads each post the next image
when the last one answered, round-robin over the replicas in service (a Service in front of
a Deployment). ``run_scenario`` walks ``Phase``s on the HPA's clock: at every tick it reads
the adapter's query from a real Prometheus, averages it over the replicas in service (a Pods
metric), lets ``Autoscaler`` decide, and puts that many replicas in service. Each tick is a
``Step``: the load, the client's p99 over the signal's window, the signal and the decision.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from testing.hpa import Autoscaler, Decision


@dataclass(frozen=True)
class Phase:
    name: str
    concurrency: int
    seconds: float
    until: Callable[[Decision], bool] | None = None  # ends the phase early when true


@dataclass(frozen=True)
class Step:
    t: float
    phase: str
    concurrency: int
    settled_s: float  # how long this load and replica count have held
    p99_s: float | None  # client p99 of requests sent in the last window, in this state
    decision: Decision


class Ramp:
    """Closed-loop load over the first ``replicas`` of ``urls``; records every answer."""

    def __init__(self, urls: Sequence[str], body: bytes, workers: int) -> None:
        self.urls = list(urls)
        self.body = body
        self.replicas = 1
        self.level = 0
        self.answers: list[tuple[float, float, int]] = []  # (sent, seconds, status)
        self._cond = threading.Condition()
        self._stop = False
        self._rr = itertools.count()
        self._sent: dict[int, float] = {}  # worker -> when its unanswered request was sent
        self._threads = [threading.Thread(target=self._work, args=(i,)) for i in range(workers)]

    def start(self) -> Ramp:
        for t in self._threads:
            t.start()
        return self

    def set(self, level: int, replicas: int) -> None:
        """Run ``level`` clients against the first ``replicas`` replicas from now on."""
        with self._cond:
            self.level, self.replicas = level, max(1, min(replicas, len(self.urls)))
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(60)

    def p99(self, since: float) -> float | None:
        """p99 latency (s) of the requests sent after ``since`` (monotonic); one still
        unanswered counts with its age so far, a lower bound of its latency."""
        now = time.monotonic()
        with self._cond:
            latest = [s for sent, s, _ in self.answers if sent >= since]
            latest += [now - sent for sent in self._sent.values() if sent >= since]
        if not latest:
            return None
        latest.sort()
        return latest[max(0, math.ceil(0.99 * len(latest)) - 1)]  # nearest rank

    def _next_url(self, index: int) -> str | None:
        with self._cond:
            self._cond.wait_for(lambda: self._stop or index < self.level)
            if self._stop:
                return None
            self._sent[index] = time.monotonic()
            return self.urls[next(self._rr) % self.replicas]

    def _work(self, index: int) -> None:
        headers = {"Content-Type": "image/jpeg"}
        with httpx.Client(timeout=60) as client:
            while (url := self._next_url(index)) is not None:
                status = client.post(f"{url}/classify?top_k=1", content=self.body, headers=headers)
                done = time.monotonic()
                with self._cond:
                    sent = self._sent.pop(index)
                    self.answers.append((sent, done - sent, status.status_code))


def run_scenario(
    phases: Sequence[Phase],
    ramp: Ramp,
    hpa: Autoscaler,
    signal: Callable[[int], float],
    window_s: float,
    tick_s: float,
) -> list[Step]:
    """Walk the phases; ``signal(replicas)`` is the Pods metric averaged over those in service."""
    steps: list[Step] = []
    replicas, t0, tick = hpa.min_replicas, time.monotonic(), threading.Event()
    for phase in phases:
        ramp.set(phase.concurrency, replicas)
        started = settled = time.monotonic()
        while time.monotonic() - started < phase.seconds:
            tick.wait(tick_s)  # the HPA evaluates on a clock (its sync period), not on events
            now = time.monotonic()
            decision = hpa.evaluate(now - t0, replicas, signal(replicas))
            p99 = ramp.p99(max(settled, now - window_s))
            steps.append(
                Step(now - t0, phase.name, phase.concurrency, now - settled, p99, decision)
            )
            if decision.desired != replicas:
                replicas, settled = decision.desired, now
                ramp.set(phase.concurrency, replicas)
            if phase.until is not None and phase.until(decision):
                break
    ramp.set(0, replicas)
    return steps
