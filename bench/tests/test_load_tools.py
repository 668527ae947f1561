"""bench.http.load (the load generator): its bodies and tallies against the real app; its
loops, spawn mode and failure handling against ``testing.standin``, a stand-in whose faults
(delays, every n-th request refused) are set by the test."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench.http import load, senders
from bench.http import report as plot
from bench.http.options import DEFAULT_IMAGES
from bench.proctree import cpu_seconds
from bench.server import spawned, spawned_process
from testing.app import ARCH, Running
from testing.paths import REPO
from testing.ports import free_port
from testing.standin import StandIn, serving

JPEG_MAGIC = b"\xff\xd8\xff"


def run_loop(coro_factory: Any, within: float = 10.0, why: str = "the loop to end") -> plot.Tally:
    """Run a load loop to its end; fail with ``why`` if it is still running after ``within`` s."""

    async def go() -> plot.Tally:
        async with httpx.AsyncClient(timeout=within) as client:
            try:
                return await asyncio.wait_for(coro_factory(client), within)
            except TimeoutError:
                pytest.fail(f"still running after {within} s: expected {why}")

    return asyncio.run(go())


def photos() -> list[bytes]:
    return [path.read_bytes() for path in DEFAULT_IMAGES]


def sender(client: httpx.AsyncClient, url: str, kind: str = "raw", per: int = 1) -> senders.Sender:
    return senders.Sender(client, f"{url}/classify", load.encode_bodies(photos(), kind, per), 5)


def _served(running: Running) -> dict[str, float]:
    """What the real app counted: answered requests by status, and images computed."""
    counts = {
        status: running.metric("sanet_requests_total", model=ARCH, status=status)
        for status in ("200", "400", "503")
    }
    return {**counts, "images": running.metric("sanet_images_total", model=ARCH)}


def test_closed_and_open_loop_every_body_end_to_end(
    serve: Callable[..., Any], tmp_path: Path, capsys: Any
) -> None:
    """Raw, multipart and base64 bodies, closed and open loop, against the real app: its own
    counters agree with the tool's tallies, request for request and image for image."""
    out, png = tmp_path / "load.json", tmp_path / "load.png"
    with serve() as running:
        before = _served(running)
        argv = ["--url", running.url, "--model", ARCH, "--concurrency", "2", "--rate", "25"]
        argv += ["--duration", "0.5", "--warmup", "0", "--body", "raw", "multipart", "base64"]
        argv += ["--images-per-request", "2", "--out", str(out), "--plot", str(png)]
        assert load.main(argv) == 0
        served = {k: v - before[k] for k, v in _served(running).items()}
    runs = json.loads(out.read_text())["runs"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "| config | body | loop |" in capsys.readouterr().out
    assert [(r["body"], r["mode"]) for r in runs] == [
        (b, m) for b in ("raw", "multipart", "base64") for m in ("closed", "open")
    ]
    assert served["400"] == 0  # every multipart and base64 body parsed by the service
    assert served["200"] == sum(r["ok"] for r in runs)
    assert served["503"] == sum(r["errors"].get("503", 0) for r in runs)
    assert served["images"] == sum(r["images_per_request"] * r["ok"] for r in runs)
    _each_run_adds_up(runs)


def _each_run_adds_up(runs: list[dict[str, Any]]) -> None:
    for r in runs:
        per = r["images_per_request"]
        assert per == (1 if r["body"] == "raw" else 2)
        assert r["ok"] > 0 and set(r["errors"]) <= {"503"}
        assert r["sent"] == r["ok"] + sum(r["errors"].values())
        assert r["batch"]["images"] == per * r["ok"]  # read from the app's own histogram
        assert 1 <= r["batch"]["batches"] <= r["ok"] * per
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert r["images_per_s"] == pytest.approx(per * r["requests_per_s"])
    assert all(1 <= r["sent"] + r["dropped"] <= 40 for r in runs if r["mode"] == "open")


def test_open_loop_counts_drops_over_the_in_flight_cap() -> None:
    state = StandIn(delay_s=0.3)
    with serving(state) as url:
        tally = run_loop(
            lambda c: senders.open_loop(sender(c, url), 60, 0.5, 1000, 2, random.Random(1)),
            why="arrivals to stop at 0.5 s and the last answer 0.3 s later",
        )
        bounded = run_loop(  # 5 s of arrivals, but the loop ends at its count of 7
            lambda c: senders.open_loop(sender(c, url), 500, 5, 7, 100, random.Random(1)),
            within=4,
            why="the loop to end at 7 arrivals, before its 5 s",
        )
    assert tally.dropped > 0 and tally.sent <= 2 * (0.5 / 0.3 + 1)
    assert tally.outcomes == Counter({"200": tally.sent})
    assert bounded.sent + bounded.dropped == 7  # bounded in count as well as time


def test_closed_loop_stops_at_the_count_and_tallies_transport_errors() -> None:
    state = StandIn()
    bodies = load.encode_bodies(photos(), "base64", 3)
    with serving(state) as url:
        tally = run_loop(
            lambda c: senders.closed_loop(senders.Sender(c, f"{url}/classify", bodies, 5), 3, 30, 7)
        )
    assert tally.sent == 7 and tally.ok_images == 21 and state.images["base64"] == 21
    dead = f"http://127.0.0.1:{free_port()}/classify"  # a port nothing listens on
    tally = run_loop(lambda c: senders.closed_loop(senders.Sender(c, dead, bodies, 5), 1, 30, 3))
    assert tally.outcomes == Counter({"ConnectError": 3}) and not tally.latencies_ms


def test_batch_histogram_reads_one_model_and_deltas_per_bucket() -> None:
    def text(small: int, big: int) -> str:
        registry = CollectorRegistry()
        hist = Histogram("sanet_batch_size", "x", ["model"], buckets=(1, 4, 16), registry=registry)
        for _ in range(small):
            hist.labels(model="sanet50").observe(1)
        for _ in range(big):
            hist.labels(model="sanet50").observe(12)
        hist.labels(model="sanet_tiny").observe(100)
        return generate_latest(registry).decode()

    before = plot.batch_histogram(text(2, 1), "sanet50")
    after = plot.batch_histogram(text(5, 3), "sanet50")
    assert before == {
        "sum": 14.0,
        "count": 3.0,
        "buckets": {1.0: 2, 4.0: 2, 16.0: 3, float("inf"): 3},
    }
    delta = plot.batch_delta(before, after)
    assert delta == {"batches": 5, "images": 27, "mean": 5.4, "distribution": {"1": 3, "16": 2}}
    assert plot.batch_histogram(text(1, 0), None)["count"] == 2  # every model
    assert plot.batch_delta(None, after) is None


def test_only_local_targets_without_allow_remote() -> None:
    with pytest.raises(SystemExit):
        load.parse_args(["--url", "http://10.1.2.3:8000"])
    assert load.parse_args(["--url", "http://10.1.2.3:8000/", "--allow-remote"]).url == (
        "http://10.1.2.3:8000"
    )
    args = load.parse_args(["--url", "http://localhost:8000"])
    assert args.model is None and args.concurrency == [1, 4, 16]
    assert load.parse_args([]).model == "sanet50"  # spawn mode by default
    assert load.parse_config("ort:SANET_BACKEND=onnxruntime,SANET_MAX_BATCH_SIZE=8") == (
        "ort",
        {"SANET_BACKEND": "onnxruntime", "SANET_MAX_BATCH_SIZE": "8"},
    )
    with pytest.raises(SystemExit):
        load.parse_config("bad:SANET_BACKEND")


def test_spawn_runs_each_config_then_stops_the_server(tmp_path: Path) -> None:
    cmd = f"{sys.executable} -m testing.standin"
    out, png = tmp_path / "spawn.json", tmp_path / "spawn.png"
    argv = [
        "--server-cmd",
        cmd,
        "--server-env",
        f"PYTHONPATH={REPO}",
        "--config",
        "good",
        "--config",
        "flaky:STANDIN_FAIL_EVERY=3",
        "--concurrency",
        "2",
        "--duration",
        "0.4",
        "--warmup",
        "0.1",
        "--ready-timeout",
        "20",
        "--out",
        str(out),
        "--plot",
        str(png),
    ]
    assert load.main(argv) == 0
    runs = {r["config"]: r for r in json.loads(out.read_text())["runs"]}
    assert runs["good"]["errors"] == {} and runs["good"]["ok"] > 0
    assert runs["flaky"]["errors"]["503"] > 0
    assert runs["good"]["batch"]["batches"] == runs["good"]["ok"]
    assert png.stat().st_size > 0


def test_spawn_reports_a_server_that_dies_and_stops_one_that_runs() -> None:
    dying = [sys.executable, "-c", "import sys; print('boom: no model'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="boom: no model"), spawned(dying, {}, 10):
        pass
    env = {"PYTHONPATH": str(REPO)}
    with spawned([sys.executable, "-m", "testing.standin"], env, 20) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/readyz")


def test_client_processes_merge_and_the_server_cpu_per_image(tmp_path: Path) -> None:
    """``--processes 2`` splits a level over two client processes and merges their tallies;
    ``--server-pid`` gives the server tree's CPU seconds per answered image."""
    out = tmp_path / "load.json"
    env = {"PYTHONPATH": str(REPO)}
    with spawned_process([sys.executable, "-m", "testing.standin"], env, 20) as server:
        argv = ["--url", server.url, "--model", "sanet50", "--concurrency", "3", "--processes"]
        argv += ["2", "--duration", "1.5", "--warmup", "0.3", "--server-pid", str(server.popen.pid)]
        argv += ["--out", str(out), "--plot", str(tmp_path / "load.png")]
        assert load.main(argv) == 0
        lifetime_cpu_s = cpu_seconds(server.popen.pid)  # since it started, warm-up included
    (run,) = json.loads(out.read_text())["runs"]
    assert run["level"] == 3 and run["errors"] == {}
    assert run["ok"] == run["sent"] > 0  # both processes' requests, merged
    assert run["batch"]["images"] == run["ok"]  # the server saw what the clients counted
    # seconds (not ms) per image (not per run): the measured window's share of the lifetime
    assert 0 < run["server_cpu_s_per_image"] * run["ok"] <= lifetime_cpu_s
