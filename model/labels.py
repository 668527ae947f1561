"""The 1000 ImageNet class names, shipped with the package."""

from __future__ import annotations

from importlib import resources


def _load() -> tuple[str, ...]:
    text = resources.files("model").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} names, expected 1000")
    return names


IMAGENET_CLASSES: tuple[str, ...] = _load()
