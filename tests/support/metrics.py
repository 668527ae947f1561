"""Read /metrics the way Prometheus does: with prometheus-client's text parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` whose labels include ``labels`` (0.0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def read_metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the server's /metrics, through ``client`` (its base URL set)."""
    response = client.get("/metrics")
    response.raise_for_status()
    return sample(response.text, name, **labels)
