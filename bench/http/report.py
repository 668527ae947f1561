"""Results of ``bench.http.load``: tallies, summaries, batch sizes from /metrics, table, JSON,
PNG.

Everything here is plain data in, data or files out; the HTTP side lives in ``bench.http.load``.
The PNG has throughput (images/s) on x and latency (ms, log scale) on y: p50 solid and p99
dashed in one colour per curve (configuration x body x loop mode), one point per level.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.common import machine, markdown_table, percentile, write_json
from testing import metrics

log = logging.getLogger("bench.http.load")

TABLE_HEADERS = [
    "config",
    "body",
    "loop",
    "level",
    "sent",
    "ok",
    "errors",
    "dropped",
    "req/s",
    "img/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "mean ms",
    "mean batch",
    "server CPU ms/img",
]


@dataclass
class Tally:
    """What one level saw: latency of each success, outcome counts, drops."""

    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    ok_images: int = 0
    dropped: int = 0


def summarize(tally: Tally, elapsed: float) -> dict[str, Any]:
    """Counts, throughput and latency percentiles (successful requests) of one level."""
    lat = tally.latencies_ms
    quantiles = {"p50": 50, "p95": 95, "p99": 99, "max": 100}
    latency = {k: (percentile(lat, q) if lat else None) for k, q in quantiles.items()}
    latency["mean"] = sum(lat) / len(lat) if lat else None
    return {
        "sent": tally.sent,
        "ok": len(lat),
        "dropped": tally.dropped,
        "errors": {k: v for k, v in sorted(tally.outcomes.items()) if k != "200"},
        "elapsed_s": elapsed,
        "requests_per_s": len(lat) / elapsed if elapsed > 0 else 0.0,
        "images_per_s": tally.ok_images / elapsed if elapsed > 0 else 0.0,
        "latency_ms": latency,
    }


def batch_histogram(text: str, model: str | None) -> dict[str, Any]:
    """``sanet_batch_size`` of ``model`` (all models when None): sum, count, cumulative buckets."""
    labels = {} if model is None else {"model": model}
    return metrics.histogram(text, "sanet_batch_size", **labels)


def batch_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict | None:
    """Batches and images the server ran between two ``sanet_batch_size`` scrapes: mean
    batch size and how many batches fell in each bucket (keyed by its upper bound)."""
    if before is None or after is None:
        return None
    count = after["count"] - before["count"]
    images = after["sum"] - before["sum"]
    dist, below = {}, 0.0
    for le in sorted(after["buckets"]):
        cumulative = after["buckets"][le] - before["buckets"].get(le, 0.0)
        if cumulative - below > 0:
            dist["+Inf" if math.isinf(le) else f"{le:g}"] = round(cumulative - below)
        below = cumulative
    mean = images / count if count else None
    return {"batches": round(count), "images": round(images), "mean": mean, "distribution": dist}


def level_name(run: dict[str, Any]) -> str:
    return f"c={run['level']:g}" if run["mode"] == "closed" else f"{run['level']:g}/s"


def body_name(run: dict[str, Any]) -> str:
    per = run.get("images_per_request", 1)
    return run["body"] + (f" x{per}" if per > 1 else "")


def curve_name(run: dict[str, Any]) -> str:
    return f"{run['config']} {body_name(run)} {run['mode']}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def describe(run: dict[str, Any]) -> str:
    """One log line for a finished level."""
    errors = run["errors"] or "no"
    return (
        f"{curve_name(run)} {level_name(run)}: {run['ok']}/{run['sent']} ok, {errors} errors, "
        f"{run['images_per_s']:.1f} img/s, p50 {_ms(run['latency_ms']['p50'])} ms"
    )


def table_rows(runs: Sequence[dict[str, Any]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in runs:
        errors = " ".join(f"{k}:{v}" for k, v in r["errors"].items()) or "0"
        lat, batch = r["latency_ms"], r.get("batch") or {}
        mean_batch = batch.get("mean")
        rows.append(
            [
                r["config"],
                body_name(r),
                r["mode"],
                level_name(r),
                r["sent"],
                r["ok"],
                errors,
                r["dropped"],
                f"{r['requests_per_s']:.1f}",
                f"{r['images_per_s']:.1f}",
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
                _ms(lat["max"]),
                _ms(lat["mean"]),
                "-" if mean_batch is None else f"{mean_batch:.2f}",
                _ms(None if (cpu := r.get("server_cpu_s_per_image")) is None else 1000 * cpu),
            ]
        )
    return rows


def plot_runs(runs: Sequence[dict[str, Any]], path: Path, title: str = "sanet-serve load") -> Path:
    """Latency percentiles against throughput, one colour per curve; written with Agg."""
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    curves: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["latency_ms"]["p50"] is not None:
            curves.setdefault(curve_name(run), []).append(run)
    for i, (name, points) in enumerate(curves.items()):
        color = f"C{i % 10}"
        xs = [p["images_per_s"] for p in points]
        ax.plot(
            xs, [p["latency_ms"]["p50"] for p in points], "o-", color=color, label=f"{name} p50"
        )
        ax.plot(
            xs, [p["latency_ms"]["p99"] for p in points], "s--", color=color, label=f"{name} p99"
        )
        for p, x in zip(points, xs, strict=True):
            ax.annotate(
                level_name(p),
                (x, p["latency_ms"]["p50"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
    if curves:
        ax.set_yscale("log")
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no successful requests", ha="center", transform=ax.transAxes)
    ax.set_xlabel("throughput (images/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def write(
    runs: Sequence[dict[str, Any]], params: dict[str, Any], out: Path, png: Path, title: str
) -> str:
    """JSON (with the machine and the parameters) at ``out``, the PNG at ``png``; the table."""
    table = markdown_table(TABLE_HEADERS, table_rows(runs))
    payload = {"machine": machine(), "params": params, "runs": runs, "table": table}
    out.parent.mkdir(parents=True, exist_ok=True)
    # write_json joins the name onto bench/results, where an absolute path stays as it is
    path = write_json(str(out.resolve()), json.loads(json.dumps(payload, default=str)))
    plot_runs(runs, png, title)
    log.info("wrote %s and %s", path, png)
    return table
