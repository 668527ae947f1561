"""From logits to answers: softmax, top-k and class names (shared by the service, CLI, bench)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.labels import IMAGENET_CLASSES


@dataclass(frozen=True)
class Prediction:
    """One ranked class of one image."""

    class_index: int
    label: str
    probability: float


def labels_for(num_classes: int) -> tuple[str, ...]:
    """ImageNet's names for a 1000-class head; ``class_<i>`` for any other head."""
    if num_classes == len(IMAGENET_CLASSES):
        return IMAGENET_CLASSES
    return tuple(f"class_{i}" for i in range(num_classes))


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes, in fp32 whatever precision the engine ran in."""
    return torch.softmax(logits.float(), dim=-1)


def top_k(probs: torch.Tensor, k: int, labels: tuple[str, ...]) -> list[Prediction]:
    """The ``k`` most probable classes of one probability row, most probable first."""
    return top_k_rows(probs[None], k, labels)[0]


def top_k_rows(probs: torch.Tensor, k: int, labels: tuple[str, ...]) -> list[list[Prediction]]:
    """``top_k`` of every row of an (n, classes) block, in one call."""
    values, indices = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
    return [
        [
            Prediction(class_index=i, label=labels[i], probability=v)
            for v, i in zip(vrow, irow, strict=True)
        ]
        for vrow, irow in zip(values.tolist(), indices.tolist(), strict=True)
    ]
