"""SANet-50 against the same network without SA (ResNet-50): model-only latency.

Every backend, folded and unfolded (unfolded = the authors' graph exported as is: the
user's alternative baseline), batch 1 and 8, all variants interleaved in one run (shuffled
each round) so machine noise hits them alike. Reports medians and the median of the
per-round SANet/ResNet ratios. ``--int8`` adds OpenVINO INT8 (NNCF, calibrated on generated
images with the agreement gate off: random weights make agreement meaningless; see
``bench.model.fidelity`` for fidelity on a trained network); ``--bf16`` adds OpenVINO with
its bf16 inference precision (on a CPU with AVX512_BF16 or AMX; elsewhere it is left out).

    python -m bench.model.speed [--rounds 15] [--threads 2] [--batches 1 8] [--int8]
    python -m bench.model.speed --device cuda --precision fp16 --batches 1 8 32 64  # a GPU

On CUDA the timed call includes the host-to-device copy of the batch and the logits' way back
(CUDA graphs per batch size, pinned staging buffers): what the service's worker pays.
"""

from __future__ import annotations

import argparse
import functools
import logging
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.common import machine, markdown_table, median, timed, write_json
from model import compile_model, create_model
from model.compile import BACKENDS, EXPORTED, CompiledModel
from model.cpu import has_bf16

log = logging.getLogger("bench.model.speed")


@dataclass
class Variant:
    backend: str
    fold: bool
    sa: bool
    model: CompiledModel
    times: dict[int, list[float]] = field(default_factory=dict)


def build(
    backends: list[str],
    threads: int,
    arch: str,
    device: str = "cpu",
    precision: str = "fp32",
    int8: bool = False,
    bf16: bool = False,
) -> list[Variant]:
    variants = []
    with tempfile.TemporaryDirectory(prefix="sanet-bench-") as tmp:
        for sa in (False, True):
            torch.manual_seed(0)
            net = create_model(arch, use_sa=sa).eval()
            for backend in backends:
                for fold in (False, True):
                    log.info("compiling %s sa=%s fold=%s", backend, sa, fold)
                    compiled = compile_model(
                        net,
                        backend,
                        fold=fold,
                        threads=threads,
                        device=device,
                        precision=precision,
                        cache_dir=tmp,  # one export per graph, shared by the ONNX engines
                        cache_key=f"{arch}-sa{int(sa)}-fold{int(fold)}",
                    )
                    variants.append(Variant(backend, fold, sa, compiled))
            if int8:
                variants.append(Variant("openvino-int8", True, sa, _int8(net, threads, tmp)))
            if bf16 and has_bf16():  # the folded export with OpenVINO's bf16 hint
                key = f"{arch}-sa{int(sa)}-fold1"
                ov = compile_model(
                    net, "openvino", precision="bf16", threads=threads, cache_dir=tmp, cache_key=key
                )
                variants.append(Variant("openvino-bf16", True, sa, ov))
    return variants


def _int8(net: torch.nn.Module, threads: int, tmp: str) -> CompiledModel:
    from model.quantize import int8_engine
    from testing.training import write_images

    folder = Path(tmp) / "calibration"
    if not folder.is_dir():
        write_images(folder, 40, 4, seed=1)
    compiled, _ = int8_engine(net, calibration_dir=folder, min_agreement=0, threads=threads)
    return compiled


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


def _record(backend: str, fold: bool, b: int, pair: dict[bool, Variant]) -> dict:
    base, sa = pair[False].times[b], pair[True].times[b]
    return {
        "backend": backend,
        "fold": fold,
        "batch": b,
        "resnet50_ms": 1000 * median(base),
        "sanet50_ms": 1000 * median(sa),
        "ratio": median([s / r for s, r in zip(sa, base, strict=True)]),
        "sanet50_images_per_s": b / median(sa),
    }


def report(variants: list[Variant], batches: list[int]) -> tuple[list[list[object]], list[dict]]:
    rows: list[list[object]] = []
    records = []
    for backend, fold in dict.fromkeys((v.backend, v.fold) for v in variants):
        pair = {v.sa: v for v in variants if v.backend == backend and v.fold == fold}
        for b in batches:
            rec = _record(backend, fold, b, pair)
            records.append(rec)
            rows.append(
                [
                    backend,
                    "yes" if fold else "no",
                    b,
                    f"{rec['resnet50_ms']:.1f}",
                    f"{rec['sanet50_ms']:.1f}",
                    f"{rec['ratio']:.3f}x",
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
    parser.add_argument("--int8", action="store_true", help="add OpenVINO INT8 (folded)")
    parser.add_argument("--bf16", action="store_true", help="add OpenVINO bf16 (folded, cpu)")
    parser.add_argument("--out", default=None, help="result file name in bench/results/")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        args.backends = [b for b in args.backends if b not in EXPORTED]  # CPU-only here
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    variants = build(
        args.backends, args.threads, args.arch, args.device, args.precision, args.int8, args.bf16
    )
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
