"""Live: a real Prometheus loads the project's config and rules and scrapes a real running
service while this test sends it traffic. Then every recording rule, every dashboard query
and the autoscaler's adapter query return data, and the target-down alert fires once the
service stops. Tests run in file order and share one stack; the last one stops the service.
"""

import concurrent.futures
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from testing import prometheus as prometheus_server
from testing.paths import GRAFANA_DIR, K8S_DIR, PROM_DIR, SAMPLES
from testing.prometheus import PromClient, adapter_query
from testing.servers import Spawned, sanet_serve_command
from testing.tools import require_tool
from testing.waiting import poll

PHOTOS = sorted(SAMPLES.glob("*.jpg"))
DATA_TIMEOUT_S = 60
SERVICE_ENV = {
    "SANET_MODELS": "sanet_tiny",
    "SANET_DEVICE": "cpu",
    "SANET_MAX_DELAY_MS": "20",
    "SANET_DRAIN_TIMEOUT_S": "2",
}


@dataclass
class Stack:
    """The running service and Prometheus of this module."""

    service: Spawned
    prom: PromClient
    http: httpx.Client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the service and Prometheus, wait until both are ready, stop both afterwards."""
    binary = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("live")
    with contextlib.ExitStack() as cleanup:
        service = Spawned(sanet_serve_command(), tmp / "service.log", SERVICE_ENV)
        cleanup.callback(service.stop)
        prometheus = prometheus_server.start(binary, tmp, [f"127.0.0.1:{service.port}"])
        cleanup.callback(prometheus.stop)
        prom = PromClient(prometheus.url)
        cleanup.callback(prom.close)
        service.wait_ready(120)
        prometheus.wait_ready(30)
        yield Stack(service, prom, service.client)


def _classify(http: httpx.Client, photo: Path, headers: dict | None = None) -> int:
    """POST one photo to /classify; return the status code."""
    body = photo.read_bytes()
    headers = {"Content-Type": "image/jpeg", **(headers or {})}
    return http.post("/classify", content=body, headers=headers).status_code


def send_traffic(http: httpx.Client) -> None:
    """One round: every sample concurrently (so batches form), a bad image, a hopeless deadline."""
    with concurrent.futures.ThreadPoolExecutor(len(PHOTOS) * 2) as pool:
        codes = list(pool.map(lambda p: _classify(http, p), PHOTOS * 2))
    assert set(codes) == {200}, codes
    bad = http.post("/classify", content=b"not an image", headers={"Content-Type": "image/jpeg"})
    assert bad.status_code == 400
    _classify(http, PHOTOS[0], {"X-Request-Timeout-Ms": "1"})  # 504 when it expires queued


def wait_for_data(stack: Stack, exprs: list[str]) -> None:
    """Send traffic and query until every expression returns at least one sample."""
    missing = list(exprs)

    def probe() -> bool:
        send_traffic(stack.http)
        missing[:] = [e for e in missing if not stack.prom.query(e)]
        return not missing

    try:
        poll(probe, DATA_TIMEOUT_S, "data", every=0.5)
    except TimeoutError:
        pytest.fail("no data for:\n" + "\n".join(missing))


def test_prometheus_scrapes_the_service(stack):
    poll(lambda: stack.prom.query('up{job="sanet"} == 1'), 30, "the first scrape of the service")
    poll(lambda: stack.prom.query("sanet_model_info"), 10, "sanet_model_info")


def test_every_recording_rule_returns_data(stack):
    rules = yaml.safe_load((PROM_DIR / "rules" / "recording.yml").read_text())
    wait_for_data(stack, [r["record"] for g in rules["groups"] for r in g["rules"]])


def test_every_dashboard_query_returns_data(stack):
    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "sanet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    substituted = [e.replace("$model", ".*").replace("$__rate_interval", "1m") for e in exprs]
    assert not [e for e in substituted if "$" in e], "unhandled dashboard variable"
    wait_for_data(stack, substituted)


def test_autoscaler_metric_query_returns_data(stack):
    values = yaml.safe_load((K8S_DIR / "prometheus-adapter" / "values.yaml").read_text())
    exprs = []
    for rule in values["rules"]["custom"]:
        series = re.match(r"\w+", rule["seriesQuery"]).group(0)
        exprs.append(adapter_query(rule["metricsQuery"], series, "instance", 'job="sanet"'))
    wait_for_data(stack, exprs)


def test_target_down_alert_fires_when_the_service_stops(stack):
    def firing() -> bool:
        return any(
            a["labels"]["alertname"] == "SanetTargetDown" and a["state"] == "firing"
            for a in stack.prom.alerts()
        )

    assert not firing()
    stack.service.stop()
    poll(firing, 30, "SanetTargetDown to fire")
