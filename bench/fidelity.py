"""INT8 fidelity on a trained network: random weights cannot show it (near-uniform outputs).

Trains a small SA-ResNet (``sanet_tiny``) for seconds on a generated, learnable image set
(each class is a colour tint plus a bright square in one quadrant, on random texture), writes
held-out images as PNG files to a calibration folder, quantizes with the service's own code
(``model.quantize.int8_engine``) and reports top-1 agreement and the largest probability
difference against fp32.

    python -m bench.fidelity [--classes 4] [--train 256] [--calibration 60]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.preprocess import preprocess
from model.quantize import int8_engine
from model.sanet import create_model

log = logging.getLogger("bench.fidelity")
SIZE = 256  # the eval transform resizes to 256 and crops 224: little is lost


def make_image(label: int, classes: int, rng: np.random.Generator) -> Image.Image:
    """An RGB image whose class shows as a tint and a bright square in one quadrant."""
    img = rng.normal(110, 35, (SIZE, SIZE, 3))
    img[..., label % 3] += 40 + 20 * (label // 3)
    quad = label % 4
    y0, x0 = (quad // 2) * SIZE // 2 + 32, (quad % 2) * SIZE // 2 + 32
    jitter = rng.integers(-16, 16, 2)
    img[y0 + jitter[0] : y0 + jitter[0] + 64, x0 + jitter[1] : x0 + jitter[1] + 64] += 90
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def dataset(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` preprocessed images (through PNG, like files) and their labels."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % classes
    images = []
    for label in labels.tolist():
        buf = io.BytesIO()
        make_image(label, classes, rng).save(buf, format="PNG")
        images.append(preprocess(buf.getvalue()))
    return torch.stack(images), labels


def write_images(folder: Path, n: int, classes: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_image(i % classes, classes, rng).save(folder / f"img{i:04d}.png")
    return folder


def train_tiny(classes: int = 4, n: int = 256, epochs: int = 3, seed: int = 0) -> nn.Module:
    """``sanet_tiny`` trained on :func:`dataset` (a few seconds on two cores)."""
    torch.manual_seed(seed)
    net = create_model("sanet_tiny", num_classes=classes)
    x, y = dataset(n, classes, seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 32):
            idx = perm[i : i + 32]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info("epoch %d: loss %.3f", epoch, loss.item())
    return net.eval()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return (net(x).argmax(1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--train", type=int, default=256)
    parser.add_argument("--calibration", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    net = train_tiny(args.classes, args.train)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_images(Path(tmp) / "calib", args.calibration, args.classes, seed=1)
        _, report = int8_engine(net, calibration_dir=folder, min_agreement=0)
    x, y = dataset(64, args.classes, seed=2)
    result = {"fp32_accuracy": accuracy(net, x, y), **report.as_dict()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
