"""Results of ``bench.e2e.run``: medians per config and level, per-round ratios, tables, JSON.

Plain data in, data or text out. A ratio is the median over rounds of that round's
sanet/baseline value, so slow phases of a noisy machine hit both sides of each ratio alike.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import markdown_table, median

log = logging.getLogger("bench.e2e")

BASELINE = "baseline-"
MEMORY_TARGET_MB = 600.0  # SANet-50 fp32 resident after load (docs/performance.md)
#: sanet config -> (least c=max throughput ratio, most c=min p50 ratio), same engine
TARGETS = {"sanet-fp32": (1.6, 0.75), "sanet-int8": (4.0, 0.75)}
#: sanet config -> least c=max throughput ratio against the best baseline
BEST_TARGETS = {"sanet-fp32": 1.3, "sanet-bf16": 2.0, "sanet-int8": 4.0}


def describe(run: dict[str, Any]) -> str:
    lat = run["latency_ms"]
    p50 = f"{lat['p50']:.0f}" if lat["p50"] is not None else "-"
    p95 = f"{lat['p95']:.0f}" if lat["p95"] is not None else "-"
    return (
        f"c={run['level']:g} {run['images_per_s']:.2f} img/s p50 {p50} ms p95 {p95} ms "
        f"errors {run['errors'] or 0} idle others {run['others_cpu_pct']}"
    )


def _value(run: dict[str, Any], what: str) -> float | None:
    return run["images_per_s"] if what == "img/s" else run["latency_ms"]["p50"]


def _per_round(runs: list[dict], config: str, level: int, what: str) -> dict[int, float]:
    out = {}
    for r in runs:
        if r["config"] == config and r["level"] == level:
            value = _value(r, what)
            if value:
                out[r["round"]] = value
    return out


def summary(runs: list[dict]) -> list[dict[str, Any]]:
    """One row per config and level: medians over rounds, errors summed, memory at most."""
    rows = []
    for config, level in dict.fromkeys((r["config"], r["level"]) for r in runs):
        mine = [r for r in runs if r["config"] == config and r["level"] == level]
        p50s = [r["latency_ms"]["p50"] for r in mine if r["latency_ms"]["p50"] is not None]
        p95s = [r["latency_ms"]["p95"] for r in mine if r["latency_ms"]["p95"] is not None]
        batches = [r["batch"]["mean"] for r in mine if r.get("batch") and r["batch"]["mean"]]
        others = [v for r in mine for v in r["others_cpu_pct"].values()]
        rows.append(
            {
                "config": config,
                "engine": mine[0]["engine"],
                "level": level,
                "rounds": len(mine),
                "images_per_s": median([r["images_per_s"] for r in mine]),
                "p50_ms": median(p50s),
                "p95_ms": median(p95s),
                "errors": sum(sum(r["errors"].values()) for r in mine),
                "mean_batch": median(batches) if batches else None,
                "rss_at_end_mb": max(r["memory_at_end"]["rss_mb"] for r in mine),
                "rss_mb": max(r["memory_after"]["rss_mb"] for r in mine),
                "pss_mb": max(r["memory_after"]["pss_mb"] for r in mine),
                "others_cpu_pct_max": max(others) if others else None,
            }
        )
    return rows


def ratio(runs: list[dict], mine: str, theirs: str, level: int, what: str) -> float | None:
    """Median over rounds of mine/theirs at ``level`` (``what``: img/s or p50)."""
    a, b = _per_round(runs, mine, level, what), _per_round(runs, theirs, level, what)
    per_round = [a[r] / b[r] for r in sorted(a.keys() & b.keys())]
    return median(per_round) if per_round else None


def _ratio(runs: list[dict], mine: str, theirs: str | None, level: int, what: str) -> float | None:
    return ratio(runs, mine, theirs, level, what) if theirs else None


def _best(rows: list[dict], level: int, what: str) -> str | None:
    """The baseline with the highest median throughput / lowest median p50 at ``level``."""
    key = "images_per_s" if what == "img/s" else "p50_ms"
    cands = [r for r in rows if r["config"].startswith(BASELINE) and r["level"] == level]
    cands = [r for r in cands if r[key] == r[key]]  # drop NaN (no successful request)
    if not cands:
        return None
    pick = max if what == "img/s" else min
    return str(pick(cands, key=lambda r: r[key])["config"])


def comparisons(runs: list[dict], rows: list[dict], engines: dict[str, str]) -> list[dict]:
    """Each sanet config against the baseline in its own engine and against the best one."""
    levels = sorted({r["level"] for r in runs})
    low, high = levels[0], levels[-1]
    configs = {r["config"] for r in runs}
    out = []
    for mine in sorted(c for c in configs if not c.startswith(BASELINE)):
        same = f"{BASELINE}{engines.get(mine, '?')}"
        targets = {
            "same engine": (same if same in configs else None, same if same in configs else None),
            "best": (_best(rows, high, "img/s"), _best(rows, low, "p50")),
        }
        for against, (thr_base, lat_base) in targets.items():
            out.append(
                {
                    "config": mine,
                    "against": against,
                    "throughput_baseline": thr_base,
                    "throughput_level": high,
                    "throughput_ratio": _ratio(runs, mine, thr_base, high, "img/s"),
                    "p50_baseline": lat_base,
                    "p50_level": low,
                    "p50_ratio": _ratio(runs, mine, lat_base, low, "p50"),
                }
            )
    return out


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def _idle(server: dict[str, Any]) -> str:
    text = _f(server.get("idle_cpu_pct"), ".1f")
    return f"{text} (per turn)" if server.get("per_turn") else text


def _check(value: float | None, bound: float, at_least: bool) -> str:
    if value is None:
        return "-"
    met = value >= bound if at_least else value <= bound
    return f"{'>=' if at_least else '<='} {bound:g}: {'met' if met else 'NOT met'}"


def tables(rows: list[dict], comps: list[dict], servers: dict[str, dict]) -> str:
    """The markdown docs/performance.md quotes: per config and level, then the ratios. "idle CPU" is
    what the server used while all were resident and idle; "per turn" marks a server that
    was therefore run only during its own turns."""
    head = ["config", "engine", "level", "img/s", "p50 ms", "p95 ms", "errors", "mean batch"]
    head += ["RSS MB at end", "RSS MB settled", "PSS MB settled", "idle CPU %"]
    body = [
        [
            r["config"],
            r["engine"],
            f"c={r['level']}",
            _f(r["images_per_s"], ".2f"),
            _f(r["p50_ms"]),
            _f(r["p95_ms"]),
            r["errors"],
            _f(r["mean_batch"], ".2f"),
            _f(r["rss_at_end_mb"], ".0f"),
            _f(r["rss_mb"], ".0f"),
            _f(r["pss_mb"], ".0f"),
            _idle(servers.get(r["config"], {})),
        ]
        for r in rows
    ]
    ratio_head = ["sanet-serve", "against", "c=16 img/s ratio", "target", "c=1 p50 ratio"]
    ratio_head.append("target")
    ratio_rows = []
    for c in comps:
        same = c["against"] == "same engine"
        thr_bound, lat_bound = TARGETS.get(c["config"], (None, None))
        if not same:
            thr_bound, lat_bound = BEST_TARGETS.get(c["config"]), None
        ratio_rows.append(
            [
                c["config"],
                f"{c['against']} ({c['throughput_baseline']}, {c['p50_baseline']})",
                _f(c["throughput_ratio"], ".2f") + "x",
                _check(c["throughput_ratio"], thr_bound, True) if thr_bound else "",
                _f(c["p50_ratio"], ".2f") + "x",
                _check(c["p50_ratio"], lat_bound, False) if lat_bound else "",
            ]
        )
    return markdown_table(head, body) + "\n\n" + markdown_table(ratio_head, ratio_rows)


def memory_check(rows: Iterable[dict]) -> str:
    """sanet-serve fp32 RSS after load against the 600 MB target."""
    rss = [r["rss_mb"] for r in rows if r["config"] == "sanet-fp32"]
    if not rss:
        return ""
    worst = max(rss)
    met = "met" if worst <= MEMORY_TARGET_MB else "NOT met"
    return f"sanet-fp32 settled RSS after load: {worst:.0f} MB (<= {MEMORY_TARGET_MB:g} MB: {met})"


def write(payload: dict[str, Any], path: Path) -> str:
    """Add the summary, ratios and tables to ``payload``, write it to ``path``; the text."""
    runs = payload["runs"]
    engines = {label: s["engine"] for label, s in payload["servers"].items()}
    rows = summary(runs)
    comps = comparisons(runs, rows, engines)
    text = tables(rows, comps, payload["servers"])
    text += "\n\n" + memory_check(rows)
    payload.update(summary=rows, comparisons=comps, table=text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    log.info("wrote %s", path)
    return text
