"""What an explanation costs in the real service: engine memory and time per image.

Starts ``sanet-serve`` (one front end) serving SANet-50 (random init, or ``--checkpoint``)
with ``SANET_EXPLAIN=lazy``, reads the engine's PSS, sends one explanation (the fp32 network
loads), reads the PSS again, then times ``--rounds`` rounds of one ``/classify``, one
``/explain?method=gradcam`` and one ``/explain?method=sa`` of the same image, interleaved.
It reports the medians of the engine's compute time (``timing_ms.inference``) and of the
client's wall time, and the median over rounds of each explanation's compute time divided
by that round's classification's.

    python -m bench.explain --backend eager --rounds 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from model.cpu import cpu_fields
from service.front.tree_metrics import pss_bytes
from testing.app import Running
from testing.paths import SAMPLES

KINDS = {
    "classify": "/classify",
    "gradcam": "/explain?method=gradcam",
    "sa": "/explain?method=sa",
}


def _opts(args: argparse.Namespace) -> dict[str, Any]:
    arch = "sanet50"
    return {
        "models": f"{arch}={arch}:{args.checkpoint}" if args.checkpoint else arch,
        "backend": args.backend,
        "device": "cpu",
        "workers": 1,
        "max_batch_size": 1,
        "grpc_port": 0,
        "explain": "lazy",
        "timeout_ms": 120_000,
    }


def _post(running: Running, path: str, image: bytes) -> tuple[float, float]:
    t0 = time.perf_counter()
    r = running.client.post(
        path, content=image, headers={"Content-Type": "image/jpeg"}, timeout=120
    )
    wall = time.perf_counter() - t0
    r.raise_for_status()
    return r.json()["timing_ms"]["inference"], wall * 1000


def measure(args: argparse.Namespace) -> dict[str, Any]:
    image = (SAMPLES / "coffee.jpg").read_bytes()
    running = Running(_opts(args))
    try:
        running.start(ready_within=900)
        engine = running.process("sanet-engine")
        _post(running, KINDS["classify"], image)
        before = pss_bytes(engine) or 0
        first = _post(running, KINDS["gradcam"], image)
        after = pss_bytes(engine) or 0
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        for _ in range(args.rounds):
            for kind, path in KINDS.items():
                times[kind].append(_post(running, path, image))
        after_runs = pss_bytes(engine) or 0
    finally:
        running.stop()
    med = {
        k: {
            "inference_ms": round(statistics.median(v[0] for v in vs), 1),
            "wall_ms": round(statistics.median(v[1] for v in vs), 1),
        }
        for k, vs in times.items()
    }
    # paired: each round's explanation against the same round's classification, so a
    # neighbour's burst on a shared machine weighs on both sides of a ratio
    paired = {k: _paired_ratio(times[k], times["classify"]) for k in ("gradcam", "sa")}
    return {
        "backend": args.backend,
        "rounds": args.rounds,
        "engine_pss_mib": {
            "before_explainer": round(before / 2**20, 1),
            "after_first_explanation": round(after / 2**20, 1),
            "after_rounds": round(after_runs / 2**20, 1),
        },
        "first_explanation_ms": round(first[1], 1),
        "median": med,
        "ratio_to_classify": paired,
        "cpu": cpu_fields().get("model name", "?"),
    }


def _paired_ratio(kind: list[tuple[float, float]], base: list[tuple[float, float]]) -> float:
    """Median over rounds of the compute time of ``kind`` over that round's ``base``."""
    return round(statistics.median(k[0] / b[0] for k, b in zip(kind, base, strict=True)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="eager", help="SANET_BACKEND of the service")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--checkpoint", default=None, help="sa_resnet50.pth.tar (else random)")
    print(json.dumps(measure(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
