"""A small SA-ResNet trained for seconds on a generated, learnable image set.

Random weights give near-uniform outputs, so INT8 fidelity (``tests/unit/test_int8.py``,
``bench.model.fidelity``) needs a network that has learned something: each class is a colour
tint over random texture and a randomly coloured square.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from model.preprocess import resize_crop, to_tensor
from model.sanet import create_model

log = logging.getLogger("testing.training")
SIZE = 256  # the eval transform resizes to 256 and crops 224: little is lost


def tint(label: int) -> np.ndarray:
    """A colour per class: points spread on the RGB cube's faces."""
    angle = 2 * np.pi * label / 7.0
    return 45 * np.array([np.cos(angle), np.sin(angle), np.cos(2 * angle + 1)])


def make_image(label: int, classes: int, rng: np.random.Generator) -> Image.Image:
    """An RGB image whose class shows as a tint; texture and a square are distractors."""
    img = rng.normal(110, 30, (SIZE, SIZE, 3)) + tint(label % classes)
    y0, x0 = rng.integers(0, SIZE - 80, 2)
    img[y0 : y0 + 80, x0 : x0 + 80] += rng.uniform(-50, 50, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def dataset(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images through the eval transform (as the service does after decoding)."""
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % classes
    images = [to_tensor(resize_crop(make_image(k, classes, rng))) for k in labels.tolist()]
    return torch.stack(images), labels


def write_images(folder: Path, n: int, classes: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_image(i % classes, classes, rng).save(folder / f"img{i:04d}.png")
    return folder


def random_crops(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random ``size`` x ``size`` crop per image: same pixel statistics, 12x less work."""
    i, j = torch.randint(0, x.shape[-1] - size + 1, (2,), generator=gen).tolist()
    return x[..., i : i + size, j : j + size]


def train_tiny(classes: int = 4, n: int = 192, epochs: int = 8, seed: int = 0) -> nn.Module:
    """``sanet_tiny`` trained on crops of :func:`dataset` (seconds on two cores).

    The network is convolutional with a global pool and the classes differ in colour, so
    what it learns on 64 px crops holds on the full 224 px input it is served and tested on.
    Trained once per process and arguments; each call gets its own copy.
    """
    net = create_model("sanet_tiny", num_classes=classes)
    net.load_state_dict(_trained_state(classes, n, epochs, seed))
    return net.eval()


@functools.lru_cache(maxsize=4)
def _trained_state(classes: int, n: int, epochs: int, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model("sanet_tiny", num_classes=classes)
    x, y = dataset(n, classes, seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread avoids OpenMP barriers on a busy machine
    try:
        _fit(net, x, y, epochs, gen)
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _fit(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, gen: torch.Generator
) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    n = x.shape[0]
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 32):
            idx = perm[i : i + 32]
            loss = nn.functional.cross_entropy(net(random_crops(x[idx], 64, gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info("epoch %d: loss %.3f", epoch, loss.item())


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return (net(x).argmax(1) == y).float().mean().item()
