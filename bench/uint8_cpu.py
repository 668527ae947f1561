"""CPU: what uint8 input saves per batch (``python -m bench.gpu_model --cpu-uint8``).

Per engine, SANet-50, batch 8, interleaved rounds: the float path (the uint8 crop batch
normalised on the host by ``model.preprocess.normalize``, then the engine's float entry)
against the uint8 path (the engine's uint8 entry, normalising inside its graph). Medians.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import machine, markdown_table
from model import compile_model
from model.preprocess import normalize
from testing.checkpoints import random_net

log = logging.getLogger("bench.uint8_cpu")
BACKENDS = ("torchscript", "onnxruntime", "openvino")


def _ms(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def run(out: Path | None, batch: int = 8, rounds: int = 9, arch: str = "sanet50") -> int:
    """Measure, print one table, write JSON to ``out`` when given."""
    net = random_net(arch, seed=0)
    names = [b for b in BACKENDS if b != "openvino" or importlib.util.find_spec("openvino")]
    engines = {b: compile_model(net, b) for b in names}
    gen = torch.Generator().manual_seed(0)
    crops = torch.randint(0, 256, (batch, 224, 224, 3), dtype=torch.uint8, generator=gen)
    paths = {
        "float": lambda e: e(normalize(crops)),
        "uint8": lambda e: e(crops),
    }
    samples: dict[tuple[str, str], list[float]] = {(b, p): [] for b in names for p in paths}
    for engine in engines.values():  # warm-up both entries
        for path in paths.values():
            path(engine)
    for _ in range(rounds):
        for b, engine in engines.items():
            for p, path in paths.items():
                samples[(b, p)].append(_ms(lambda e=engine, f=path: f(e)))
    normalize_ms = statistics.median(_ms(lambda: normalize(crops)) for _ in range(rounds))
    rows, records = [], []
    for b in names:
        f, u = (statistics.median(samples[(b, p)]) for p in ("float", "uint8"))
        rows.append([b, f"{f:.1f}", f"{u:.1f}", f"{f - u:+.1f}", f"{(f - u) / f:+.1%}"])
        records.append({"backend": b, "float_ms": f, "uint8_ms": u})
    headers = ["engine", "float path ms", "uint8 path ms", "saved ms", "saved"]
    print(f"{arch}, batch {batch}, median of {rounds} interleaved rounds")
    print(markdown_table(headers, rows))
    print(f"host normalize alone: {normalize_ms:.2f} ms per batch of {batch}")
    result = {
        "machine": machine(),
        "arch": arch,
        "batch": batch,
        "rounds": rounds,
        "host_normalize_ms": normalize_ms,
        "rows": records,
    }
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return 0
