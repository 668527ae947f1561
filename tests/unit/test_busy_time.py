"""sanet_inference_busy_seconds_total: a batch in progress counts up to the scrape, and the
counter never goes down (a decrease would read as a counter reset in Prometheus)."""

from prometheus_client import CollectorRegistry

from service.metrics import BusyTime
from testing.waiting import poll


def busy(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "sanet_inference_busy_seconds_total", {"model": "m", "device": "cpu"}
    )
    assert value is not None
    return value


def test_busy_time_counts_running_batches_and_only_grows():
    registry = CollectorRegistry()
    timer = BusyTime(registry)
    timer.export("m", "cpu")
    assert busy(registry) == 0.0
    with timer.timing("m", "cpu") as seconds:
        poll(lambda: busy(registry) > 0, 5, "a running batch to count")
        during = busy(registry)
    after = busy(registry)
    assert after >= during
    assert after == seconds() > 0
    with timer.timing("m", "cpu"):
        pass
    assert busy(registry) >= after
