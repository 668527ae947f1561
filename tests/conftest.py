"""Test-wide settings: deterministic threads, and CI's rule that required tools must exist."""

from __future__ import annotations

import os

import pytest
import torch

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

torch.set_num_threads(min(2, os.cpu_count() or 1))


def require(condition: bool, reason: str) -> None:
    """Skip locally, but fail in CI, when a real component a test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
