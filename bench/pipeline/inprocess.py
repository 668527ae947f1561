"""The in-process limit: decode + preprocess + model, no HTTP, with the service's threads.

Single-image latency (one photo at a time, end to end) and saturated throughput (a
preprocessing pool feeding batches to the model, as the service's batcher does). The
service's own numbers (bench/http/load.py) are judged against these.

    python -m bench.pipeline.inprocess [--model sanet50] [--backend auto] [--batch 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from bench.common import machine, markdown_table, median, percentile, write_json
from model import compile_model, create_model, preprocess
from model.compile import CompiledModel
from model.postprocess import Prediction, labels_for, probabilities, top_k
from testing.paths import SAMPLES

log = logging.getLogger("bench.pipeline.inprocess")


def classify(model: CompiledModel, batch: torch.Tensor, k: int = 5) -> list[list[Prediction]]:
    """What the service does after the batch: softmax, top-k, class names (model.postprocess)."""
    probs = probabilities(model(batch))
    labels = labels_for(probs.shape[-1])
    return [top_k(row, k, labels) for row in probs]


def single_latency(model: CompiledModel, photos: list[bytes], n: int) -> list[float]:
    """Seconds per photo, decode to top-k, one at a time."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        classify(model, preprocess(photos[i % len(photos)]).unsqueeze(0))
        out.append(time.perf_counter() - start)
    return out


def throughput(
    model: CompiledModel, photos: list[bytes], batch: int, workers: int, seconds: float
) -> tuple[float, float]:
    """Images/s and mean batch size with a preprocessing pool feeding the model."""
    ready: queue.Queue[torch.Tensor] = queue.Queue(maxsize=4 * batch)
    stop = threading.Event()

    def produce(i: int) -> None:
        while not stop.is_set():
            tensor = preprocess(photos[i % len(photos)])
            while not stop.is_set():
                try:
                    ready.put(tensor, timeout=0.1)
                    break
                except queue.Full:
                    continue
            i += workers

    done = batches = 0
    with ThreadPoolExecutor(workers) as pool:
        for w in range(workers):
            pool.submit(produce, w)
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            items = [ready.get()]
            while len(items) < batch and not ready.empty():
                items.append(ready.get_nowait())
            classify(model, torch.stack(items))
            done, batches = done + len(items), batches + 1
        stop.set()
    return done / elapsed, done / max(batches, 1)


COLUMNS = ("single_p50_ms", "single_p99_ms", "images_per_s", "mean_batch")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sanet50")
    parser.add_argument("--backends", nargs="+", default=["torchscript", "onnxruntime"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing threads")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--single", type=int, default=40, help="single-image runs")
    parser.add_argument(
        "--images", nargs="+", type=Path, default=[SAMPLES / "coffee.jpg"], help="photos"
    )
    return parser


def _measure(model: Any, photos: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    with torch.inference_mode():
        single_latency(model, photos, 5)  # warm-up
        lat = single_latency(model, photos, args.single)
        rate, mean_batch = throughput(model, photos, args.batch, args.workers, args.seconds)
    return {
        "backend": model.backend,
        "single_p50_ms": 1000 * median(lat),
        "single_p99_ms": 1000 * percentile(lat, 99),
        "images_per_s": rate,
        "mean_batch": mean_batch,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    photos = [p.read_bytes() for p in args.images]
    torch.manual_seed(0)
    net = create_model(args.model).eval()
    records = [
        _measure(compile_model(net, backend, threads=args.threads), photos, args)
        for backend in args.backends
    ]
    rows = [[r["backend"], *(f"{r[k]:.1f}" for k in COLUMNS)] for r in records]
    headers = ["backend", "single p50 ms", "single p99 ms", "saturated img/s", "mean batch"]
    table = markdown_table(headers, rows)
    payload = {
        "machine": machine(),
        "args": {**vars(args), "images": [str(p) for p in args.images]},
        "results": records,
        "table": table,
    }
    path = write_json("pipeline.json", payload)
    print(table)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
