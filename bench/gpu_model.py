"""Model-only speed on a GPU: ResNet-50 against SANet-50 per SA route, and uint8 input.

    python -m bench.gpu_model --out bench/results/gpu_model.json      # on the GPU host
    python -m bench.gpu_model --dry-run                                # CPU smoke, sanet_tiny
    python -m bench.gpu_model --cpu-uint8 --batches 8 --iters 15       # CPU: uint8 vs float in

GPU rows: the network on the device (input already there), channels_last, fp16 and bf16, a
CUDA graph per batch size, CUDA events, the median of ``--iters`` replays. Routes: ResNet-50
(the folded SANet-50 without SA), SANet-50 folded with eager SA ops, with the Triton kernels,
through torch.compile (inductor), and the authors' unfolded graph. Then the host-to-device
copy of a float32 batch against a uint8 one. Without CUDA (or with ``--dry-run``) the same
code runs a few CPU iterations of ``sanet_tiny`` in fp32, to check that it works.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.common import machine, markdown_table
from bench.gpu_timing import ROUTES, build_route, cpu_ms, cuda_ms, h2d_ms, networks

log = logging.getLogger("bench.gpu_model")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_model", description=__doc__)
    p.add_argument("--dry-run", action="store_true", help="CPU smoke run with sanet_tiny")
    p.add_argument("--cpu-uint8", action="store_true", help="CPU: uint8 vs float32 input")
    p.add_argument("--routes", nargs="+", default=list(ROUTES), choices=list(ROUTES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 128])
    p.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=list(DTYPES))
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--arch", default="sanet50")
    p.add_argument(
        "--budget-s",
        type=float,
        default=200.0,
        help="start no new route after this many seconds (inductor compiles are the long part)",
    )
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument(
        "--rows", type=Path, help="append each row here as a JSON line as soon as it is timed"
    )
    return p.parse_args(argv)


def _usable(route: str, device: str) -> str | None:
    """Why ``route`` cannot run here, or None."""
    if route not in ("triton", "inductor"):
        return None
    if importlib.util.find_spec("triton") is None and (device == "cuda" or route == "triton"):
        return "triton is not installed"
    if route == "triton" and device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return "needs cuda (or TRITON_INTERPRET=1)"
    return None


def model_rows(
    args: argparse.Namespace, device: str, sink: Callable[[dict[str, Any]], None] = print
) -> list[dict[str, Any]]:
    """One row per (route, dtype, batch), each handed to ``sink`` as soon as it is there; a
    route that fails is reported, not fatal."""
    nets = networks(args.arch)
    rows = _Rows(sink)
    start = time.monotonic()
    for dtype in args.dtypes:
        for route in args.routes:
            skip = _usable(route, device)
            if time.monotonic() - start > args.budget_s:
                skip = f"time budget of {args.budget_s:.0f} s spent"
            if skip:
                rows.append({"route": route, "dtype": dtype, "skipped": skip})
                continue
            try:
                fn = build_route(route, nets, device, DTYPES[dtype])
                for b in args.batches:
                    rows.append(_time(fn, route, dtype, b, device, args))
            except Exception as exc:  # one broken route must not lose the others' numbers
                log.exception("route %s %s failed", route, dtype)
                rows.append({"route": route, "dtype": dtype, "error": repr(exc)[:300]})
            log.info("done: %s %s", route, dtype)
    return list(rows)


class _Rows(list[dict[str, Any]]):
    """A list that hands each row to ``sink`` as it is appended."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.sink = sink

    def append(self, row: dict[str, Any]) -> None:
        super().append(row)
        self.sink(row)


def jsonl_sink(path: Path | None) -> Callable[[dict[str, Any]], None]:
    """Append each row to ``path`` as one JSON line (``step: model``), flushed at once."""

    def sink(row: dict[str, Any]) -> None:
        log.info("row: %s", row)
        if path is not None:
            with path.open("a") as f:
                f.write(json.dumps({"step": "model", **row}) + "\n")

    return sink


def _time(fn: Any, route: str, dtype: str, b: int, device: str, args: argparse.Namespace) -> dict:
    x = torch.randn(b, 3, 224, 224, device=device, dtype=DTYPES[dtype])
    with torch.inference_mode():
        if device == "cuda":
            ms = cuda_ms(
                fn, x.contiguous(memory_format=torch.channels_last), args.iters, args.warmup
            )
        else:
            ms = cpu_ms(fn, x, args.iters, args.warmup)
    return {"route": route, "dtype": dtype, "batch": b, "ms": ms, "img_s": 1000 * b / ms}


def table(rows: list[dict[str, Any]], batches: list[int]) -> str:
    """One line per (route, dtype): ms at batch 1, img/s at the others, SA cost vs ResNet."""
    timed = {(r["route"], r["dtype"], r["batch"]): r for r in rows if "ms" in r}
    out = []
    for r in rows:
        if "ms" not in r:
            if "batch" not in r:
                out.append([ROUTES[r["route"]], r["dtype"], r.get("skipped") or r.get("error")])
            continue
        if r["batch"] != batches[0]:
            continue
        cells = [f"{r['ms']:.2f} ms"]
        for b in batches[1:]:
            hit = timed.get((r["route"], r["dtype"], b))
            cells.append(f"{hit['img_s']:,.0f}" if hit else "-")
        base = timed.get(("resnet", r["dtype"], batches[-1]))
        last = timed.get((r["route"], r["dtype"], batches[-1]))
        ratio = f"{last['ms'] / base['ms']:.2f}x" if base and last else "-"
        out.append([ROUTES[r["route"]], r["dtype"], *cells, ratio])
    headers = ["network", "dtype", f"b{batches[0]}", *[f"b{b} img/s" for b in batches[1:]]]
    return markdown_table([*headers, f"time vs ResNet at b{batches[-1]}"], out)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # the exporters' own INFO lines would bury the progress
    args = parse(argv)
    if args.cpu_uint8:
        from bench.uint8_cpu import run as run_cpu_uint8

        return run_cpu_uint8(args.out, batch=args.batches[0], rounds=args.iters)
    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    if device == "cpu":  # the smoke run: small, fp32, a few iterations
        args.arch, args.dtypes, args.batches = "sanet_tiny", ["fp32"], [1, 2]
        args.iters, args.warmup = min(args.iters, 3), 1
    result: dict[str, Any] = {"machine": machine(), "device": device, "arch": args.arch}
    if device == "cuda":
        result["machine"]["driver_cuda"] = torch.version.cuda
    result["rows"] = model_rows(args, device, jsonl_sink(args.rows))
    print(table(result["rows"], args.batches))
    if device == "cuda":
        result["h2d"] = {str(b): h2d_ms(b, args.iters) for b in args.batches}
        h2d = [[b, *(f"{v:.3f}" for v in result["h2d"][str(b)].values())] for b in args.batches]
        keys = list(result["h2d"][str(args.batches[0])])
        print(markdown_table(["batch", *keys], h2d))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
