"""sanet_inference_busy_seconds_total: a batch in progress counts as it runs (each flush adds
the time since the last), the counter never goes down, and a finished batch adds exactly its
duration in all."""

import pytest
from prometheus_client import CollectorRegistry

from service.metrics import BusyTime
from testing.waiting import poll


def busy(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "sanet_inference_busy_seconds_total", {"model": "m", "device": "cpu"}
    )
    assert value is not None
    return value


def test_busy_time_counts_running_batches_and_only_grows() -> None:
    registry = CollectorRegistry()
    timer = BusyTime(registry)
    timer.export("m", "cpu")
    assert busy(registry) == 0.0
    with timer.timing("m", "cpu") as seconds:

        def flushed() -> bool:
            timer.flush()
            return busy(registry) > 0

        poll(flushed, 5, "a running batch to count")
        during = busy(registry)
    after = busy(registry)
    assert after >= during
    assert after == pytest.approx(seconds()) and seconds() > 0
    with timer.timing("m", "cpu"):
        pass
    timer.flush()
    assert busy(registry) >= after
