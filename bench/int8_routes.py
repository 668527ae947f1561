"""Measured, dropped INT8 routes for SA (a standalone script, not part of ``make bench``;
docs/performance.md "Routes tried and dropped").

Model only, SANet-50 folded beside ResNet-50 (the same network without SA), interleaved
rounds, medians and the median of per-round SANet/ResNet ratios:

- ``ov``: the service's INT8 (NNCF, ``model.quantize.int8_engine``), f32 arithmetic outside
  the quantized convolutions;
- ``ov-bf16``: the same IR compiled with ``INFERENCE_PRECISION_HINT=bf16``, so SA's
  reductions, gate and multiplies run in bf16 beside the INT8 convolutions (needs bf16);
- ``pt2e``: PyTorch 2's route, ``torch.export`` at the timed batch, torchao's
  ``X86InductorQuantizer`` (``pip install torchao``), ``torch.compile`` with freezing
  (oneDNN INT8 convolutions, SA as inductor's generated C++).

Calibration on generated images (random weights: speed only, no fidelity).

    python -m bench.int8_routes [--routes ov ov-bf16 pt2e] [--rounds 9] [--batch 8]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from bench.common import machine, median, timed
from model import create_model
from model.compile import prepare
from model.openvino_backend import OvRunner
from model.quantize import int8_engine
from testing.training import write_images

Run = Callable[[torch.Tensor], torch.Tensor]


def pt2e(net: torch.nn.Module, x: torch.Tensor) -> Run:
    import torch._inductor.config as inductor_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    inductor_config.freezing = True
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    with torch.no_grad():
        graph = torch.export.export(prepare(net, fold=True), (x,)).module()
        observed = prepare_pt2e(graph, quantizer)
        observed(x)
        compiled = torch.compile(convert_pt2e(observed))
        compiled(x)
    return compiled


def build(route: str, net: torch.nn.Module, x: torch.Tensor, tmp: Path, key: str) -> Run:
    if route == "pt2e":
        return pt2e(net, x)
    calibration = tmp / "calibration"
    if not calibration.is_dir():
        write_images(calibration, 40, 4, seed=1)
    _, report = int8_engine(
        net, calibration_dir=calibration, min_agreement=0, threads=2, cache_dir=tmp, cache_key=key
    )
    assert report.path is not None
    return OvRunner(Path(report.path), 2, None, "bf16" if route == "ov-bf16" else "fp32")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--routes", nargs="+", default=["ov", "ov-bf16", "pt2e"])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    x = torch.randn(args.batch, 3, 224, 224)
    nets = {"sanet50": create_model("sanet50"), "resnet50": create_model("sanet50", use_sa=False)}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            (r, n): build(r, net.eval(), x, Path(tmp), n)
            for r in args.routes
            for n, net in nets.items()
        }
        ms: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
        with torch.no_grad():
            for _ in range(args.rounds):
                for k, run in runs.items():
                    ms[k].append(1000 * timed(functools.partial(run, x)))
    out = {"machine": machine(), "batch": args.batch, "rounds": args.rounds, "routes": {}}
    for r in args.routes:
        sa, plain = ms[(r, "sanet50")], ms[(r, "resnet50")]
        ratio = median([a / b for a, b in zip(sa, plain, strict=True)])
        out["routes"][r] = {"sanet50_ms": median(sa), "resnet50_ms": median(plain), "ratio": ratio}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
