"""One entry of ``SANET_MODELS`` (a field of ``service.config.Settings``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import model

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``SANET_MODELS``: ``name=arch:checkpoint``, ``name=arch``, or the short
    forms ``arch=checkpoint`` and ``arch`` (named after their architecture).

    The name is what clients ask for (``?model=``), what /v1/models and the metrics show, so
    two checkpoints of one architecture can be served side by side.
    """

    arch: str
    checkpoint: Path | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.arch)
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"bad model name {self.name!r}: use letters, digits, '.', '_', '-'")

    @classmethod
    def parse(cls, entry: str) -> ModelSpec:
        left, sep, right = (part.strip() for part in entry.strip().partition("="))
        if not left or (sep and not right):
            raise ValueError(
                f"bad model entry {entry!r}: expected 'name=arch:path', 'arch=path' or 'arch'"
            )
        if not sep:
            return cls(arch=left)
        arch, colon, path = (part.strip() for part in right.partition(":"))
        if arch in model.list_models():  # name=arch[:path]
            if colon and not path:
                raise ValueError(f"bad model entry {entry!r}: empty checkpoint path")
            return cls(arch=arch, checkpoint=_path(path), name=left)
        return cls(arch=left, checkpoint=_path(right))  # arch=path

    def __str__(self) -> str:
        target = f"{self.arch}:{self.checkpoint}" if self.checkpoint else self.arch
        if self.name == self.arch:
            return f"{self.arch}={self.checkpoint}" if self.checkpoint else self.arch
        return f"{self.name}={target}"


def _path(text: str) -> Path | None:
    return Path(text).expanduser() if text else None
