"""bench/gpu.sh on the CPU: the dry run is green, writes its rows and summary; a failing
step exits non-zero; an outside SIGTERM stops it; none leaves a process behind.

The run carries a tag in its environment (``testing.tagged``): every process gpu.sh starts
inherits it, so one that outlives the script is found wherever it was reparented.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testing.paths import REPO
from testing.ports import free_port
from testing.tagged import new_tag, tagged
from testing.waiting import poll

DRY = {
    "DEVICE": "cpu",
    "MODEL": "sanet_tiny",
    "PRECISION": "fp32",
    "MODEL_ARGS": "--dry-run --routes resnet eager",
    "LEVELS": "2 4",
    "CLIENTS": "1",
    "DURATION": "1",
    "WARMUP": "0",
    "STEPS": "preflight model e2e tests",
    "B_MODEL": "60",
    "B_E2E": "100",
    "B_TESTS": "60",
}


def gpu_sh(out: Path, **env: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    tag = new_tag()
    full = {**os.environ, **DRY, **tag, "PYTHON": sys.executable, "OUT": str(out)}
    full.update(PORT=str(free_port()), **env)
    cmd = ["bash", str(REPO / "bench" / "gpu.sh")]
    proc = subprocess.Popen(
        cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, tag


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


def test_dry_run_is_green_and_writes_every_step(tmp_path: Path) -> None:
    proc, tag = gpu_sh(tmp_path, BACKEND="best")
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output
    steps = [r["step"] for r in rows(tmp_path)]
    assert steps[0] == "preflight" and "model" in steps and "ready" in steps
    assert steps.count("e2e") == 2 and "busy" in steps and steps[-1] == "tests_cuda"
    table = (tmp_path / "summary.md").read_text()
    for figure in ("tests/cuda", "ResNet-50", "e2e img/s, c=4", "server CPU ms", "e2e ceiling"):
        assert figure in table, table
    assert "failed steps | none" in table and table in output
    assert "backend torchscript" in table  # the best SA route of the model step, served
    assert not tagged(tag)


def test_a_failing_step_exits_non_zero_and_leaves_nothing(tmp_path: Path) -> None:
    """The server cannot be ready within the readiness budget (SANet-50 takes longer than
    1 s to load here): the step fails, the server's group is stopped, the exit is 1."""
    env = {"STEPS": "preflight e2e", "MODEL": "sanet50", "READY_MAX_S": "1", "BACKEND": "eager"}
    proc, tag = gpu_sh(tmp_path, **env)
    output, _ = proc.communicate(timeout=200)
    assert proc.returncode == 1, output
    assert "failed steps: e2e" in output and "not ready within 1s" in output
    assert {"step": "e2e", "failed": True, "rc": 124, "why": "timeout"} in rows(tmp_path)
    poll(lambda: not tagged(tag), 15, "every process gpu.sh started gone")


def test_sigterm_stops_everything_it_started(tmp_path: Path) -> None:
    proc, tag = gpu_sh(tmp_path, STEPS="e2e", MODEL="sanet50", BACKEND="eager")
    poll(lambda: (tmp_path / "server.log").exists() and len(tagged(tag)) > 2, 60, "a server")
    time.sleep(1)  # the server's tree is forking its children
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output
    assert "== summary" in output
    poll(lambda: not tagged(tag), 15, "every process gpu.sh started gone")
