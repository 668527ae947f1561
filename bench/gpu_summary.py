"""bench/gpu.sh's rows (one JSON object per line, appended as each step goes) -> its summary.

    python -m bench.gpu_summary --rows OUT/rows.jsonl --cores 16 --out OUT/summary.md
    python -m bench.gpu_summary --rows OUT/rows.jsonl --best-backend     # what to serve
    python -m bench.gpu_summary --rows OUT/rows.jsonl --pytest-log OUT/tests_cuda.log
    python -m bench.gpu_summary --rows OUT/rows.jsonl --busy BEFORE AFTER SECONDS [--util CSV]

The table holds whatever the rows hold: a step that failed or ran out of time leaves its
earlier rows and a ``failed`` row, and the table says so. The e2e ceiling is what the host's
cores can feed: cores x 1000 / (server CPU ms per image), beside the measured img/s.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.common import markdown_table

#: model-only SA routes (bench.gpu_timing.ROUTES) -> the SANET_BACKEND that serves them
SERVED_ROUTE = {"eager": "torchscript", "triton": "triton", "inductor": "inductor"}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def timed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("step") == "model" and "ms" in r]


def best_route(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The served SA route with the most img/s at the largest batch timed."""
    model = [r for r in timed(rows) if r["route"] in SERVED_ROUTE]
    if not model:
        return None
    top = max(r["batch"] for r in model)
    return max((r for r in model if r["batch"] == top), key=lambda r: r["img_s"])


def _at(rows: list[dict[str, Any]], route: str, dtype: str, batch: int) -> dict | None:
    hits = [r for r in timed(rows) if (r["route"], r["dtype"], r["batch"]) == (route, dtype, batch)]
    return hits[0] if hits else None


def _model_lines(rows: list[dict[str, Any]]) -> list[list[str]]:
    best = best_route(rows)
    if best is None:
        return [["model only", "no row"]]
    batches = sorted({r["batch"] for r in timed(rows)})
    lo, hi, dtype = batches[0], batches[-1], best["dtype"]
    lines = []
    for label, route in (("SANet-50, best route", best["route"]), ("ResNet-50", "resnet")):
        small, big = _at(rows, route, dtype, lo), _at(rows, route, dtype, hi)
        cells = f"b{lo} {small['ms']:.2f} ms" if small else f"b{lo} -"
        cells += f", b{hi} {big['img_s']:,.0f} img/s" if big else f", b{hi} -"
        lines.append([f"model only, {label} ({route} {dtype})", cells])
    sa, plain = _at(rows, best["route"], dtype, hi), _at(rows, "resnet", dtype, hi)
    if sa and plain:
        lines.append(
            [f"SANet-50 / ResNet-50 img/s at b{hi}", f"{sa['img_s'] / plain['img_s']:.2f}x"]
        )
    return lines


def _e2e_lines(rows: list[dict[str, Any]], cores: int) -> list[list[str]]:
    e2e = [r for r in rows if r.get("step") == "e2e"]
    if not e2e:
        return [["end to end", "no row"]]
    lines = [[f"e2e img/s, c={r['level']:g}", f"{r['images_per_s']:,.1f}"] for r in e2e]
    cpu = [r["server_cpu_s_per_image"] * 1000 for r in e2e if r.get("server_cpu_s_per_image")]
    if cpu:
        top = max(e2e, key=lambda r: r["images_per_s"])  # the most loaded level's cost
        ms = top.get("server_cpu_s_per_image", 0) * 1000 or statistics.median(cpu)
        ceiling = cores * 1000 / ms
        measured = top["images_per_s"]
        lines.append(["server CPU ms per image", ", ".join(f"{c:.2f}" for c in cpu)])
        lines.append(
            [
                f"e2e ceiling = {cores} cores x 1000 / {ms:.2f} ms",
                f"{ceiling:,.0f} img/s beside {measured:,.0f} measured ({measured / ceiling:.0%})",
            ]
        )
    return lines


def summary(rows: list[dict[str, Any]], cores: int) -> str:
    """The one table of the run."""
    by_step = {r["step"]: r for r in rows if "step" in r}
    tests = by_step.get("tests_cuda")
    lines = [["preflight", by_step.get("preflight", {}).get("line", "no row")]]
    if tests and "passed" in tests:
        counts = f"{tests['passed']} passed, {tests['failed']} failed, {tests['skipped']} skipped"
        lines.append(["tests/cuda", counts])
    lines += _model_lines(rows) + _e2e_lines(rows, cores)
    busy = by_step.get("busy")
    if busy:
        util = busy.get("gpu_util_median_pct")
        gpu = "n/a (no nvidia-smi)" if util is None else f"{util:.0f} % (nvidia-smi median)"
        lines.append(
            ["GPU busy while loaded", f"{gpu}; engine busy {busy['engine_busy_pct']:.0f} %"]
        )
    ready = by_step.get("ready")
    if ready:
        lines.append(["start to ready", f"{ready['seconds']:.1f} s (backend {ready['backend']})"])
    failed = [f"{r['step']} ({r['why']}, rc {r['rc']})" for r in rows if r.get("failed") is True]
    lines.append(["failed steps", ", ".join(failed) or "none"])
    return markdown_table(["figure", "value"], lines)


def pytest_row(log: Path) -> dict[str, Any]:
    """Counts of ``pytest -v`` result lines (what finished, even if the run was cut)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    count = {k: len(re.findall(rf" {k.upper()}\b", text)) for k in ("passed", "failed", "skipped")}
    count["failed"] += len(re.findall(r" ERROR\b", text))
    return {"step": "tests_cuda", **count}


def busy_row(before: Path, after: Path, seconds: float, util: Path | None) -> dict[str, Any]:
    """GPU utilisation (nvidia-smi samples, median) and the engine's busy fraction."""
    from testing.metrics import sample

    name = "sanet_inference_busy_seconds_total"
    busy = sample(after.read_text(), name) - sample(before.read_text(), name)
    samples = []
    if util is not None and util.exists():
        for line in util.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[1].replace(".", "", 1).isdigit():
                samples.append(float(parts[1]))
    median = statistics.median(samples) if samples else None
    pct = 100 * busy / seconds if seconds > 0 else 0.0
    return {"step": "busy", "gpu_util_median_pct": median, "engine_busy_pct": pct}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_summary", description=__doc__)
    p.add_argument("--rows", type=Path, required=True)
    p.add_argument("--cores", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    p.add_argument("--best-backend", action="store_true")
    p.add_argument("--pytest-log", type=Path, default=None)
    p.add_argument("--busy", nargs=3, metavar=("BEFORE", "AFTER", "SECONDS"), default=None)
    p.add_argument("--util", type=Path, default=None, help="nvidia-smi samples (csv)")
    args = p.parse_args(argv)
    rows = read_rows(args.rows)
    if args.best_backend:
        best = best_route(rows)
        print(SERVED_ROUTE[best["route"]] if best else "auto")
    elif args.pytest_log:
        append(args.rows, pytest_row(args.pytest_log))
    elif args.busy:
        before, after, seconds = args.busy
        append(args.rows, busy_row(Path(before), Path(after), float(seconds), args.util))
    else:
        table = summary(rows, args.cores)
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
