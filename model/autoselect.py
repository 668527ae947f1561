"""``auto`` by measurement: time the candidate engines on the served model, keep the fastest.

Each candidate is built and warmed up (one that raises is dropped, with a log line), then
timed in interleaved rounds at batch 1 and at the largest batch the service forms, on uint8
crop batches as the service feeds them; the score is the sum of the per-image times at
those sizes (latency and throughput weigh the same). The choice and its timings are written
to ``<cache_dir>/<cache_key>-auto-<fingerprint>.json``, where the fingerprint covers the CPU
model and flags, the engine versions, threads and batch sizes, and ``cache_key`` the
weights: a restart on the same machine reads it and builds only the winner; another machine
or engine version measures again. The timer is injectable so tests can fake the clock.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.compile import CompiledModel
from model.errors import EngineError
from model.export_cache import digest, read_json, write_json_atomic

log = logging.getLogger(__name__)

Timer = Callable[[], float]
AUTO_VERSION = 1  # bump when the scoring changes, so old decisions are measured again


@dataclass(frozen=True)
class Candidate:
    """An engine that ``auto`` may pick, built only when needed."""

    backend: str
    build: Callable[[], CompiledModel]


@dataclass
class Choice:
    """What ``auto`` decided and why (``timings_ms``: backend -> batch -> median ms)."""

    backend: str
    timings_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "measured"  # or "cached"
    path: str | None = None


def score(timings_ms: dict[str, float]) -> float:
    """Sum over the timed batch sizes of milliseconds per image (lower is better)."""
    return sum(ms / int(batch) for batch, ms in timings_ms.items())


def _time_call(run: CompiledModel, batch: torch.Tensor, timer: Timer) -> float:
    start = timer()
    run(batch)
    return timer() - start


def measure(
    built: dict[str, CompiledModel],
    batches: Sequence[int],
    rounds: int,
    timer: Timer = time.perf_counter,
    input_size: int = 224,
) -> dict[str, dict[str, float]]:
    """Median ms per (backend, batch), candidates interleaved in every round, on the uint8
    crop batches the service feeds (each engine normalises them itself). The candidates in
    ``built`` have been warmed up (:func:`warm`)."""
    inputs = crop_batches(batches, input_size)
    samples: dict[tuple[str, int], list[float]] = {(n, b): [] for n in built for b in batches}
    for _ in range(rounds):
        for name, run in built.items():
            for b in batches:
                samples[(name, b)].append(_time_call(run, inputs[b], timer))
    return {
        name: {str(b): 1000 * statistics.median(samples[(name, b)]) for b in batches}
        for name in built
    }


def crop_batches(batches: Sequence[int], input_size: int = 224) -> dict[int, torch.Tensor]:
    """Random uint8 (B, H, W, 3) crop batches, the service's input form."""
    gen = torch.Generator().manual_seed(0)
    shape = (input_size, input_size, 3)
    return {
        b: torch.randint(0, 256, (b, *shape), dtype=torch.uint8, generator=gen) for b in batches
    }


def build_and_warm(
    candidates: Sequence[Candidate], batches: Sequence[int], input_size: int = 224
) -> dict[str, CompiledModel]:
    """Each candidate built and run once per batch size (first calls compile, capture and
    specialise). One that raises is dropped with a log line: a route that cannot build here
    (no C compiler for Triton's launcher, an inductor failure) must not stop the service."""
    inputs = crop_batches(batches, input_size)
    built: dict[str, CompiledModel] = {}
    for cand in candidates:
        try:
            run = cand.build()
            for b in batches:
                run(inputs[b])
        except Exception as exc:
            log.warning("auto: dropped %s: %s: %s", cand.backend, type(exc).__name__, exc)
            log.debug("auto: %s failed", cand.backend, exc_info=True)
            continue
        built[cand.backend] = run
    if not built:
        names = ", ".join(c.backend for c in candidates)
        raise EngineError(f"auto: no candidate engine could be built or run ({names})")
    return built


def decision_path(cache_dir: str | Path, cache_key: str, fingerprint: dict[str, Any]) -> Path:
    return Path(cache_dir) / f"{cache_key}-auto-{digest([AUTO_VERSION, fingerprint])}.json"


def _cached(path: Path | None, names: list[str]) -> Choice | None:
    data = read_json(path) if path is not None else None
    if not isinstance(data, dict) or data.get("backend") not in names:
        return None
    return Choice(str(data["backend"]), dict(data.get("timings_ms", {})), "cached", str(path))


def choose(
    candidates: Sequence[Candidate],
    *,
    batches: Sequence[int],
    rounds: int = 3,
    decision_file: Path | None = None,
    timer: Timer = time.perf_counter,
) -> tuple[CompiledModel, Choice]:
    """The fastest candidate, built, with its :class:`Choice` (read from ``decision_file``
    when a valid one is there, else measured and written to it)."""
    by_name = {c.backend: c for c in candidates}
    cached = _cached(decision_file, list(by_name))
    if cached is not None:
        log.info("auto: %s, decided earlier (%s)", cached.backend, decision_file)
        return by_name[cached.backend].build(), cached
    built = build_and_warm(candidates, batches)
    timings = measure(built, batches, rounds, timer) if len(built) > 1 else {}
    best = min(built, key=lambda n: score(timings[n])) if timings else next(iter(built))
    choice = Choice(best, timings, "measured", str(decision_file) if decision_file else None)
    for name, t in timings.items():
        log.info("auto: %-12s %s", name, ", ".join(f"b{b} {ms:.1f} ms" for b, ms in t.items()))
    log.info("auto: picked %s", best)
    if decision_file is not None:
        write_json_atomic(decision_file, {"backend": best, "timings_ms": timings})
    return built[best], choice
