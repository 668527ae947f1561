"""What the CPU is and which instruction sets it has, from ``/proc/cpuinfo`` (Linux)."""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path


@cache
def cpuinfo() -> tuple[str | None, frozenset[str]]:
    """The first CPU's model name and flags (``None`` and no flags where unreadable)."""
    name: str | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                return name, frozenset(line.split(":", 1)[1].split())
    return name, frozenset()
