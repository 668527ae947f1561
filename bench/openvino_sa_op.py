"""A measured, dropped route: folded SA as one OpenVINO custom op (a standalone script,
not part of ``make bench``; docs/performance.md "Routes tried and dropped").

Builds ``bench/openvino_sa_op.cpp`` (the fused SA kernel's loops as an ``ov::op::Op``) with
g++ against the openvino wheel's headers, exports the folded SANet-50 with one
``sanet.SAGate`` node per block, and times it interleaved with the stock folded export and
ResNet-50 (batch 1, what the OpenVINO backend runs per sample), then sums the CPU plugin's
per-node counters by type: the op's own time against the reorders the plugin puts around it
(its convolutions run ``nhwc``, a reference op only planar).

    python -m bench.openvino_sa_op [--rounds 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import machine, markdown_table, median, timed, write_json
from model import create_model
from model.compile import prepare
from model.folding import FoldedShuffleAttention
from model.onnx_backend import export_onnx

SOURCE = Path(__file__).with_suffix(".cpp")
HEADER = Path(__file__).resolve().parents[1] / "model" / "csrc" / "sa_plane.h"
FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math"]


def build_extension(out_dir: Path) -> Path:
    """The op library, compiled once per source version."""
    import openvino

    digest = hashlib.sha256(SOURCE.read_bytes() + HEADER.read_bytes()).hexdigest()[:12]
    lib = out_dir / f"libsanet_ov_{digest}.so"
    if lib.exists():
        return lib
    root = Path(openvino.__file__).parent
    libs = root / "libs"
    link = [
        str(next(libs.glob(f"{name}.so.*")))
        for name in ("libopenvino", "libopenvino_onnx_frontend")
    ]
    cmd = ["g++", *FLAGS, "-std=c++17", "-fPIC", "-shared", str(SOURCE), f"-I{root / 'include'}"]
    cmd += ["-o", str(lib), *link, str(libs / "libtbb.so.12"), f"-Wl,-rpath,{libs}"]
    subprocess.run(cmd, check=True)
    return lib


@torch.library.custom_op("sanet_bench::sa_gate", mutates_args=())
def sa_gate(
    y: torch.Tensor,
    identity: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    cw: torch.Tensor,
    eps: float,
) -> torch.Tensor:
    """Eager meaning of the op (for export tracing): the folded SA's unfused form."""
    sa = FoldedShuffleAttention.__new__(FoldedShuffleAttention)
    torch.nn.Module.__init__(sa)
    sa.alpha, sa.beta, sa.cw, sa.eps = alpha, beta, cw, eps
    return sa.unfused(y, identity.clone())


@sa_gate.register_fake
def _(y, identity, alpha, beta, cw, eps):
    return torch.empty_like(y)


def _as_custom_op(self: FoldedShuffleAttention, y: torch.Tensor, identity: torch.Tensor) -> Any:
    return torch.ops.sanet_bench.sa_gate(y, identity, self.alpha, self.beta, self.cw, self.eps)


def export_with_op(net: torch.nn.Module, path: Path) -> Path:
    """``net`` (folded) exported with one ``sanet.SAGate`` node per SA block."""
    import onnx
    import onnxscript
    from onnx.defs import OpSchema

    param = OpSchema.FormalParameter
    if not onnx.defs.has("SAGate", "sanet"):
        onnx.defs.register_schema(
            OpSchema(
                "SAGate",
                "sanet",
                1,
                inputs=[param(n, "T") for n in ("y", "identity", "alpha", "beta", "cw")],
                outputs=[param("out", "T")],
                type_constraints=[("T", ["tensor(float)"], "float32")],
                attributes=[OpSchema.Attribute("eps", OpSchema.AttrType.FLOAT, "eps")],
            )
        )
    opset = onnxscript.values.Opset("sanet", 1)

    def translate(y, identity, alpha, beta, cw, eps: float):
        return opset.SAGate(y, identity, alpha, beta, cw, eps=eps)

    original = FoldedShuffleAttention.forward
    FoldedShuffleAttention.forward = _as_custom_op  # type: ignore[method-assign]
    try:
        example = (torch.zeros(1, 3, 224, 224),)
        table = {torch.ops.sanet_bench.sa_gate.default: translate}
        torch.onnx.export(net, example, path, dynamo=True, custom_translation_table=table)  # type: ignore[arg-type]
    finally:
        FoldedShuffleAttention.forward = original  # type: ignore[method-assign]
    return path


def profile(request: Any, x: np.ndarray, n: int = 10) -> dict[str, float]:
    """ms per inference summed by node type (executed nodes only)."""
    totals: dict[str, float] = collections.defaultdict(float)
    for _ in range(n):
        request.infer({0: x})
        for info in request.profiling_info:
            totals[info.node_type] += info.real_time.total_seconds() * 1000 / n
    return {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1]) if v > 0}


def export_all(tmp: Path) -> dict[str, Path]:
    """ResNet-50 and SANet-50 (stock and custom-op forms), all folded, exported to ``tmp``."""
    files = {}
    for name, sa in (("resnet50", False), ("sanet50 stock", True)):
        torch.manual_seed(0)
        folded = prepare(create_model("sanet50", use_sa=sa), True)
        files[name] = export_onnx(folded, tmp / f"{sa}.onnx")
    files["sanet50 custom op"] = export_with_op(folded, tmp / "op.onnx")
    return files


def interleaved_ms(requests: dict[str, Any], x: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """Per round, in a new shuffled order, each request's median of 5 calls, in ms."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    names = list(requests)
    for _ in range(rounds):
        random.shuffle(names)
        for n in names:
            calls = [timed(functools.partial(requests[n].infer, {0: x})) for _ in range(5)]
            times[n].append(1000 * median(calls))
    return times


def report(times: dict[str, list[float]], counters: dict[str, dict[str, float]]) -> str:
    rows = []
    for n in times:
        ratio = median([a / b for a, b in zip(times[n], times["resnet50"], strict=True)])
        top = ", ".join(f"{k} {v:.1f}" for k, v in list(counters[n].items())[:5])
        rows.append([n, f"{median(times[n]):.1f}", f"{ratio:.3f}x", top])
    return markdown_table(["graph", "batch 1 ms", "vs ResNet-50", "plugin ms by node type"], rows)


def main(argv: list[str] | None = None) -> int:
    import openvino as ov

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    config["INFERENCE_NUM_THREADS"] = args.threads
    x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="sanet-ovop-") as tmp:
        core.add_extension(str(build_extension(Path(tmp))))
        files = export_all(Path(tmp))
        models = {n: core.read_model(str(f)) for n, f in files.items()}
        requests = {
            n: core.compile_model(m, "CPU", config).create_infer_request()
            for n, m in models.items()
        }
        logits = {n: np.array(r.infer({0: x})[0]) for n, r in requests.items()}
        parity = float(np.abs(logits["sanet50 custom op"] - logits["sanet50 stock"]).max())
        times = interleaved_ms(requests, x, args.rounds)
        profiled = {**config, "PERF_COUNT": True}
        counters = {
            n: profile(core.compile_model(m, "CPU", profiled).create_infer_request(), x)
            for n, m in models.items()
        }
    print(report(times, counters))
    print(f"custom op vs stock folded, max |logit diff|: {parity:.2e}")
    payload = {"machine": machine(), "times_ms": times, "counters_ms": counters, "parity": parity}
    print(write_json("openvino_sa_op.json", payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
