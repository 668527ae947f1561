"""Read /metrics the way Prometheus does: with prometheus-client's text parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0.0 when absent), as
    PromQL's ``sum`` would: labels left out (``protocol``, say) are summed over."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += float(s.value)
    return total


def read_metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the server's /metrics, through ``client`` (its base URL set)."""
    response = client.get("/metrics")
    response.raise_for_status()
    return sample(response.text, name, **labels)
