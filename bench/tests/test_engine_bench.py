"""The engine-over-its-socket benchmark runs and reports sane figures (a short smoke run)."""

from __future__ import annotations

from bench.engine.socket_load import run, table


def test_the_engine_bench_measures_requests_and_cpu() -> None:
    points = run([1, 4], seconds=0.3)
    assert [p.inflight for p in points] == [1, 4]
    for p in points:
        assert p.requests > 0 and p.engine_cpu_s > 0
    assert table(points).count("\n") == 3  # header, rule, one row per point
