"""The figure of an autoscaling run (``tests/deploy/test_autoscaling.py``): load, p99, signal
and replicas over time, as a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_scaling(rows: Sequence[dict[str, Any]], path: Path, *, slo: float, target: float) -> Path:
    """An autoscaling run over time: clients and p99 (SLO line) above; the HPA's signal
    (target line) and the replicas it decided below. ``rows``: t, clients, p99_s, signal,
    replicas, one per HPA evaluation."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = [r["t"] for r in rows]
    top.step(t, [r["clients"] for r in rows], where="post", color="C0", label="clients (load)")
    top.set_ylabel("concurrent clients", color="C0")
    p99 = top.twinx()
    p99.plot(t, [r["p99_s"] for r in rows], "o-", ms=3, color="C3", label="client p99")
    p99.axhline(slo, color="C3", ls="--", lw=1, label=f"SLO {slo:g} s")
    p99.set_ylabel("p99 latency (s)", color="C3")
    p99.legend(loc="upper right", fontsize=7)
    bottom.plot(t, [r["signal"] for r in rows], color="C2", label="utilisation per pod")
    bottom.axhline(target, color="C2", ls="--", lw=1, label=f"HPA target {target:g}")
    bottom.set_ylabel("signal", color="C2")
    bottom.set_ylim(0, 1.1)
    bottom.legend(loc="upper left", fontsize=7)
    replicas = bottom.twinx()
    replicas.step(t, [r["replicas"] for r in rows], where="post", color="C1", label="replicas")
    replicas.set_ylabel("desired replicas", color="C1")
    replicas.set_ylim(0, max([r["replicas"] for r in rows] + [1]) + 1)
    bottom.set_xlabel("time (s)")
    top.set_title("replayed HPA on a live Prometheus: load, p99, signal, replicas")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
