"""A learnable localisation task: a coloured square on grey noise, the class being its colour.

A tiny SA-ResNet learns it in seconds; an explanation that means something then peaks where
the square is (``tests/unit/test_explain.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from model.preprocess import normalize
from model.sanet import SANet, create_model

SIDE, SQUARE = 224, 64
COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 80, 230], [230, 210, 40]])


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    side: int = SQUARE

    def overlaps_cell(self, row: int, col: int, cell: float) -> bool:
        """Whether grid cell (row, col) of size ``cell`` pixels overlaps the square."""
        return (
            row * cell < self.top + self.side
            and (row + 1) * cell > self.top
            and col * cell < self.left + self.side
            and (col + 1) * cell > self.left
        )


def squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[Box]]:
    """``n`` normalised (3, 224, 224) images, their labels and where each square is."""
    rng = np.random.default_rng(seed)
    grey = rng.normal(120, 35, (n, SIDE, SIDE, 1)) + rng.normal(0, 8, (n, SIDE, SIDE, 3))
    labels = np.arange(n) % len(COLOURS)
    boxes = []
    for i in range(n):
        top, left = (int(v) for v in rng.integers(0, SIDE - SQUARE, 2))
        patch = COLOURS[labels[i]] + rng.normal(0, 15, (SQUARE, SQUARE, 3))
        grey[i, top : top + SQUARE, left : left + SQUARE] = patch
        boxes.append(Box(top, left))
    pixels = torch.from_numpy(np.clip(grey, 0, 255).astype(np.uint8))
    return normalize(pixels), torch.from_numpy(labels), boxes


def train_squares(n: int = 192, epochs: int = 3, seed: int = 0) -> SANet:
    """``sanet_tiny`` trained on :func:`squares` (seconds on one core)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = create_model("sanet_tiny", num_classes=len(COLOURS))
    x, y, _ = squares(n, seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net.train()
    try:
        for _ in range(epochs):
            for idx in torch.randperm(n, generator=gen).split(32):
                loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def peak_in_square(heatmap: torch.Tensor, box: Box) -> bool:
    """Whether the map's highest cell overlaps the square."""
    rows, cols = heatmap.shape
    row, col = divmod(int(heatmap.argmax()), cols)
    return box.overlaps_cell(row, col, SIDE / rows)
