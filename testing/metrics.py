"""Read /metrics the way Prometheus does: with prometheus-client's text parser.

The one /metrics reader of the tests and the benchmarks: a summed sample, the largest
sample, and a histogram's sum, count and cumulative buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def _samples(text: str, name: str, labels: dict[str, str]) -> Iterator[Sample]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                yield s


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0.0 when absent), as
    PromQL's ``sum`` would: labels left out (``protocol``, say) are summed over."""
    return sum(float(s.value) for s in _samples(text, name, labels))


def maximum(text: str, name: str, **labels: str) -> float:
    """The largest sample ``name`` whose labels include ``labels`` (0.0 when absent)."""
    return max((float(s.value) for s in _samples(text, name, labels)), default=0.0)


def histogram(text: str, name: str, **labels: str) -> dict[str, Any]:
    """Histogram ``name`` summed over the series whose labels include ``labels``:
    ``{"sum", "count", "buckets": {upper bound: cumulative count}}``."""
    buckets: dict[float, float] = {}
    for s in _samples(text, f"{name}_bucket", labels):
        le = float(s.labels["le"])
        buckets[le] = buckets.get(le, 0.0) + float(s.value)
    return {
        "sum": sample(text, f"{name}_sum", **labels),
        "count": sample(text, f"{name}_count", **labels),
        "buckets": buckets,
    }


def read_metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the server's /metrics, through ``client`` (its base URL set)."""
    response = client.get("/metrics")
    response.raise_for_status()
    return sample(response.text, name, **labels)
