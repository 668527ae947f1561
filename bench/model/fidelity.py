"""INT8 and bf16 fidelity on a trained network: random weights cannot show it (near-uniform
outputs).

Trains a small SA-ResNet (``sanet_tiny``, ``testing.training``) for seconds on a generated,
learnable image set (each class a colour tint over random texture), writes other images as
PNG files to a calibration folder, builds each reduced precision with the service's own code
(``model.quantize.int8_engine``: quantized on 4/5 of the folder, measured on the rest;
``model.build_engine`` with ``precision="bf16"``: measured on the whole folder, on a CPU with
AVX512_BF16 or AMX) and reports top-1 agreement and the largest probability difference
against fp32.

    python -m bench.model.fidelity [--classes 4] [--train 256] [--calibration 60]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from model import build_engine
from model.cpu import has_bf16
from model.quantize import int8_engine
from testing.training import accuracy, dataset, train_tiny, write_images

log = logging.getLogger("bench.model.fidelity")


def _bf16(net: nn.Module, folder: Path) -> dict[str, Any] | None:
    if not has_bf16():
        log.warning("bf16 skipped: this CPU has no AVX512_BF16 or AMX")
        return None
    _, report = build_engine(
        net, precision="bf16", device="cpu", calibration_dir=folder, bf16_min_agreement=0
    )
    return report.bf16


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--train", type=int, default=192)
    parser.add_argument("--calibration", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    net = train_tiny(args.classes, args.train)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_images(Path(tmp) / "calib", args.calibration, args.classes, seed=1)
        _, report = int8_engine(net, calibration_dir=folder, min_agreement=0)
        bf16 = _bf16(net, folder)
    x, y = dataset(64, args.classes, seed=2)
    result = {"fp32_accuracy": accuracy(net, x, y), **report.as_dict(), "bf16": bf16}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
