"""bench.hops traces one /classify of a real process tree through its modules."""

from __future__ import annotations

from bench import hops
from testing.paths import REPO, SAMPLES


def test_one_classify_is_traced_through_both_processes() -> None:
    edges = hops.trace(REPO, SAMPLES / "coffee.jpg")
    assert len(edges) == 2, edges  # the front end and the engine, no supervisor calls
    pairs = {edge for rows in edges.values() for edge in rows}
    assert ("service.front.job", "model.preprocess") in pairs  # decode and crop into the slot
    assert ("service.front.job", "service.front.engine_client") in pairs  # the submit
    assert ("service.engine.batcher", "service.engine.model") in pairs  # the batch runs
    report = hops.report(edges)
    assert report["edges"] == len(pairs)
    assert report["hops"] == report["modules"] - 1
    assert report["service_modules"] + report["model_modules"] == report["modules"]
