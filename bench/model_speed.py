"""SANet-50 against the same network without SA (ResNet-50): model-only latency.

Every backend, folded and unfolded, batch 1 and 8, all variants interleaved in one run
(shuffled each round) so machine noise hits them alike. Reports medians and the median of
the per-round SANet/ResNet ratios.

    python -m bench.model_speed [--rounds 15] [--threads 2] [--batches 1 8]
    python -m bench.model_speed --device cuda --precision fp16 --batches 1 8 32 64  # a GPU

On CUDA the timed call includes the host-to-device copy of the batch and the logits' way back
(CUDA graphs per batch size, pinned staging buffers): what the service's worker pays.
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
from dataclasses import dataclass, field

import torch

from bench.common import machine, markdown_table, median, timed, write_json
from model import compile_model, create_model
from model.compile import BACKENDS, CompiledModel

log = logging.getLogger("bench.model_speed")


@dataclass
class Variant:
    backend: str
    fold: bool
    sa: bool
    model: CompiledModel
    times: dict[int, list[float]] = field(default_factory=dict)


def build(
    backends: list[str], threads: int, arch: str, device: str = "cpu", precision: str = "fp32"
) -> list[Variant]:
    variants = []
    for sa in (False, True):
        torch.manual_seed(0)
        net = create_model(arch, use_sa=sa).eval()
        for backend in backends:
            for fold in (False, True):
                log.info("compiling %s sa=%s fold=%s", backend, sa, fold)
                compiled = compile_model(
                    net, backend, fold=fold, threads=threads, device=device, precision=precision
                )
                variants.append(Variant(backend, fold, sa, compiled))
    return variants


def run(variants: list[Variant], batches: list[int], rounds: int, warmup: int) -> None:
    inputs = {b: torch.randn(b, 3, 224, 224) for b in batches}
    rng = random.Random(0)
    for r in range(warmup + rounds):
        order = [(v, b) for v in variants for b in batches]
        rng.shuffle(order)
        for v, b in order:
            elapsed = timed(functools.partial(v.model, inputs[b]))
            if r >= warmup:
                v.times.setdefault(b, []).append(elapsed)


def report(variants: list[Variant], batches: list[int]) -> tuple[list[list[object]], list[dict]]:
    rows: list[list[object]] = []
    records = []
    for backend in dict.fromkeys(v.backend for v in variants):
        for fold in (False, True):
            pair = {v.sa: v for v in variants if v.backend == backend and v.fold == fold}
            for b in batches:
                base, sa = pair[False].times[b], pair[True].times[b]
                ratio = median([s / r for s, r in zip(sa, base, strict=True)])
                rec = {
                    "backend": backend,
                    "fold": fold,
                    "batch": b,
                    "resnet50_ms": 1000 * median(base),
                    "sanet50_ms": 1000 * median(sa),
                    "ratio": ratio,
                    "sanet50_images_per_s": b / median(sa),
                }
                records.append(rec)
                rows.append(
                    [
                        backend,
                        "yes" if fold else "no",
                        b,
                        f"{rec['resnet50_ms']:.1f}",
                        f"{rec['sanet50_ms']:.1f}",
                        f"{ratio:.3f}x",
                        f"{rec['sanet50_images_per_s']:.1f}",
                    ]
                )
    return rows, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--arch", default="sanet50")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--out", default=None, help="result file name in bench/results/")
    args = parser.parse_args(argv)
    if args.device == "cuda" and "onnxruntime" in args.backends:
        args.backends = [b for b in args.backends if b != "onnxruntime"]  # CPU-only here
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    variants = build(args.backends, args.threads, args.arch, args.device, args.precision)
    with torch.inference_mode():
        run(variants, args.batches, args.rounds, args.warmup)
    rows, records = report(variants, args.batches)
    headers = [
        "backend",
        "folded",
        "batch",
        "ResNet-50 ms",
        "SANet-50 ms",
        "SA overhead",
        "SANet-50 img/s",
    ]
    table = markdown_table(headers, rows)
    path = write_json(
        args.out or ("model_speed.json" if args.device == "cpu" else "model_speed_cuda.json"),
        {"machine": machine(), "args": vars(args), "results": records, "table": table},
    )
    print(table)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
