"""Live: the shipped HPA, replayed on a real Prometheus scraping two real service processes.

Two ``sanet-serve`` replicas (SANet-50, one inference thread each) run behind a round-robin
client; a real Prometheus with the project's config scrapes both every second. A closed-loop
load walks idle -> overload -> steady -> idle. Every tick (the HPA's sync period) evaluates
the prometheus-adapter rule's query, averages it over the replicas in service and applies the
HPA algorithm with the behaviour of ``deploy/k8s/base/hpa.yaml`` (testing.hpa); the
decided number of replicas is put in service. Production durations are scaled by
``TIME_SCALE`` (the 1 m rate window is 4 s, the 300 s scale-down window 20 s).

What the scenario guarantees, and so what is asserted: idle means the minimum; once the
overload and a replica count have held for a whole window, p99 above the SLO means the HPA
asks for more replicas (not that it asked before p99 crossed the SLO: the overload crosses it
within the first window, before the utilisation reaches the target); a steady load never
flips the replica count back and forth; idle again returns to the minimum; KEDA's query on
the same data equals the adapter's, summed.
The overload is sized from a measured single-request latency (3x the SLO's worth of queued
work), so it overloads any machine; no assertion compares a timing to a constant. (At the
steady single client, p99 is one image's service time: on a crowded machine it can exceed
the SLO with no queue, and more replicas could not shorten it, so it is not asserted on.)

``SANET_SCALING_PLOT=path.png`` also writes the run's plot there (the figure in docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from testing import prometheus as prom_server
from testing.hpa import Autoscaler
from testing.paths import K8S_DIR, PROM_DIR, SAMPLES
from testing.prometheus import PromClient, adapter_query
from testing.scaling import Phase, Ramp, Step, run_scenario
from testing.scaling_plot import plot_scaling
from testing.servers import Spawned, sanet_serve_command
from testing.tools import require_tool
from testing.waiting import poll

TIME_SCALE = 1 / 15
WINDOW_S = 60 * TIME_SCALE  # the adapter's [1m]
TICK_S = 1.0  # the HPA's 15 s sync period, scaled
REPLICAS = 2
SERVICE_ENV = {
    "SANET_MODELS": "sanet50",
    "SANET_DEVICE": "cpu",
    "SANET_BACKEND": "torchscript",
    "SANET_THREADS": "1",
    "SANET_PREPROCESS_WORKERS": "1",
    "SANET_MAX_BATCH_SIZE": "4",
    "SANET_TIMEOUT_MS": "60000",
    "SANET_DRAIN_TIMEOUT_S": "2",
}


def slo_seconds() -> float:
    """The p99 threshold of the SanetHighLatencyP99 alert: the SLO the HPA must protect."""
    rules = yaml.safe_load((PROM_DIR / "rules" / "alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert", "").endswith("P99")]
    return float(rule["expr"].rsplit(">", 1)[1])


def shipped_hpa() -> tuple[dict, float]:
    """The base HPA object and its target as a number ("600m" -> 0.6)."""
    hpa = yaml.safe_load((K8S_DIR / "base" / "hpa.yaml").read_text())
    (metric,) = hpa["spec"]["metrics"]
    text = str(metric["pods"]["target"]["averageValue"])
    return hpa, float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def signal_query() -> str:
    """The adapter rule the HPA reads, as the adapter would send it for the test's pods."""
    hpa, _ = shipped_hpa()
    name = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    values = yaml.safe_load((K8S_DIR / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = [r for r in values["rules"]["custom"] if r["name"]["as"] == name]
    series = rule["seriesQuery"].split("{", 1)[0]
    query = rule["metricsQuery"].replace("[1m]", f"[{WINDOW_S:g}s]")
    return adapter_query(query, series, "instance", 'job="sanet"')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Spawned], PromClient]]:
    binary = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("autoscaling")
    with contextlib.ExitStack() as cleanup:
        pods = []
        for i in range(REPLICAS):
            pod = Spawned(sanet_serve_command(), tmp / f"pod{i}.log", SERVICE_ENV)
            cleanup.callback(pod.stop)
            pods.append(pod)
        prometheus = prom_server.start(binary, tmp, [f"127.0.0.1:{p.port}" for p in pods])
        cleanup.callback(prometheus.stop)
        prom = PromClient(prometheus.url)
        cleanup.callback(prom.close)
        for pod in pods:
            pod.wait_ready(300)
        prometheus.wait_ready(30)
        poll(lambda: len(prom.query('up{job="sanet"} == 1')) == REPLICAS, 30, "both scraped")
        yield pods, prom


def single_request_s(url: str, body: bytes) -> float:
    """Median latency of sequential requests: the cost of one image on this machine now."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(5):
            r = client.post("/classify", content=body, headers={"Content-Type": "image/jpeg"})
            assert r.status_code == 200
            times.append(r.elapsed.total_seconds())
    return statistics.median(times)


def settled(step: Step) -> bool:
    """Load and replicas unchanged for a whole window: the signal describes this state."""
    return step.settled_s >= WINDOW_S + TICK_S


def keda_query() -> str:
    """The ScaledObject's query with the test's rate window."""
    scaled = yaml.safe_load((K8S_DIR / "overlays" / "keda" / "scaledobject.yaml").read_text())
    (trigger,) = scaled["spec"]["triggers"]
    return trigger["metadata"]["query"].replace("[1m]", f"[{WINDOW_S:g}s]")


def run(
    pods: list[Spawned], prom: PromClient, tmp: Path, keda: list[tuple[float, float]]
) -> tuple[list[Step], Autoscaler, int]:
    """The scenario: calibrate, wait until the signal is quiet, walk the phases, report."""
    hpa_spec, target = shipped_hpa()
    hpa_spec["spec"].update(minReplicas=1, maxReplicas=REPLICAS)  # the replicas there are
    hpa = Autoscaler.from_spec(hpa_spec, target, TIME_SCALE)
    query, urls = signal_query(), [p.url for p in pods]
    body = (SAMPLES / "coffee.jpg").read_bytes()
    overload = max(4, min(24, math.ceil(3 * slo_seconds() / single_request_s(urls[0], body))))

    def signal(replicas: int) -> float:
        values = prom.by_label(query, "instance")
        # KEDA's query on the same data: the sum over every pod (it divides by the count),
        # both evaluated 3 s in the past, where no scrape is still being written
        at = time.time() - 3
        past = prom.by_label(query, "instance", at)
        keda.append((sum(past.values()), prom.by_label(keda_query(), "", at).get("", 0.0)))
        return sum(values.get(u.removeprefix("http://"), 0.0) for u in urls[:replicas]) / replicas

    poll(lambda: signal(REPLICAS) < 0.01, 30, "the calibration to leave the window")
    phases = [
        Phase("idle", 0, 3 * TICK_S),
        Phase("overload", overload, 16),
        Phase("steady", 1, hpa.down.window_s + 12),
        Phase(
            "idle again",
            0,
            hpa.down.window_s + 2 * WINDOW_S + 10,
            until=lambda d: d.desired == hpa.min_replicas,
        ),
    ]
    ramp = Ramp(urls, body, overload).start()
    try:
        steps = run_scenario(phases, ramp, hpa, signal, WINDOW_S, TICK_S)
    finally:
        ramp.stop()
    report(steps, tmp, slo_seconds(), target, overload)
    return steps, hpa, overload


def test_replayed_hpa_scales_up_while_p99_is_over_the_slo_and_back_to_min(cluster, tmp_path: Path):
    keda: list[tuple[float, float]] = []  # (adapter summed over pods, KEDA query) per tick
    steps, hpa, overload = run(*cluster, tmp_path, keda)
    slo = slo_seconds()
    by_phase: dict[str, list[Step]] = {}
    for s in steps:
        by_phase.setdefault(s.phase, []).append(s)

    assert all(s.decision.desired == 1 for s in by_phase["idle"]), by_phase["idle"]
    slow = [s for s in by_phase["overload"] if settled(s) and s.p99_s and s.p99_s > slo]
    assert slow, f"the overload ({overload} clients) never held p99 above {slo} s: {steps}"
    for s in slow:
        assert s.decision.raw > s.decision.current, f"p99 {s.p99_s:.2f} s above the SLO: {s}"
    assert max(s.decision.desired for s in by_phase["overload"]) == REPLICAS
    counts = [s.decision.desired for s in by_phase["steady"]]
    turns = [b - a for a, b in itertools.pairwise(counts) if b != a]
    assert all(t < 0 for t in turns) or all(t > 0 for t in turns), f"flapping: {counts}"
    assert by_phase["idle again"][-1].decision.desired == hpa.min_replicas, by_phase["idle again"]
    assert max(k for _, k in keda) > 0.5
    for adapter, scaled_object in keda:
        assert scaled_object == pytest.approx(adapter, abs=1e-9)


def report(steps: list[Step], tmp: Path, slo: float, target: float, overload: int) -> None:
    """The run as JSON and as the plot (also at $SANET_SCALING_PLOT when set)."""
    rows = [
        {"t": s.t, "phase": s.phase, "clients": s.concurrency, "p99_s": s.p99_s,
         "signal": s.decision.value, "raw": s.decision.raw, "replicas": s.decision.desired}
        for s in steps
    ]  # fmt: skip
    (tmp / "scaling.json").write_text(json.dumps({"overload": overload, "steps": rows}, indent=1))
    for path in [tmp / "scaling.png", *filter(None, [os.environ.get("SANET_SCALING_PLOT")])]:
        out = plot_scaling(rows, Path(path), slo=slo, target=target)
        assert out.stat().st_size > 0
        Path(path).with_suffix(".json").write_text((tmp / "scaling.json").read_text())
