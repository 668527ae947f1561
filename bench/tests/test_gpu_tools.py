"""The GPU run's helpers: the carried wheel set (derived, never the host's torch), the
preflight's one line, the summary's figures and ceiling."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_summary import best_route, pytest_row, summary
from bench.gpu_wheels import host_owned, wheel_files, wheel_set
from testing.paths import REPO


def test_wheel_set_is_what_the_server_imports_at_the_locked_versions() -> None:
    pins = wheel_set()
    needed = {"h11", "httpx", "httpcore", "annotated-doc", "protobuf", "fastapi", "uvicorn"}
    needed |= {"pydantic-settings", "prometheus-client", "grpcio", "matplotlib", "starlette"}
    assert needed <= set(pins)
    assert not [n for n in pins if host_owned(n)]  # torch, triton, nvidia-*
    assert not {"sanet-serve", "sympy", "jinja2", "openvino"} & set(pins)  # not imported
    assert all(pins[n] == md.version(n) for n in pins)


def test_wheel_files_refuse_the_hosts_torch(tmp_path: Path) -> None:
    for name in ("h11-0.16.0-py3-none-any.whl", "pydantic_core-2.50.5-cp312-x.whl"):
        (tmp_path / name).write_text("")
    (tmp_path / "expected.txt").write_text("h11==0.16.0\npydantic-core==2.50.5\n")
    assert [f.name for f in wheel_files(tmp_path)] == [
        "h11-0.16.0-py3-none-any.whl",
        "pydantic_core-2.50.5-cp312-x.whl",
    ]
    (tmp_path / "expected.txt").write_text("h11==0.16.0\ntorch==2.11.0\nidna==3.21\n")
    with pytest.raises(
        SystemExit, match=r"torch is the host's own, never carried; idna==3\.21 has no wheel"
    ):
        wheel_files(tmp_path)


def test_preflight_names_what_is_missing(tmp_path: Path) -> None:
    shim = tmp_path / "uvicorn"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('shim', name='uvicorn')\n")
    path = [str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    cmd = [sys.executable, "-m", "bench.gpu_check", "--device", "cuda"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith("preflight: missing uvicorn (needed by service.")
    assert "torch.cuda.is_available() is False" in lines[0]


def _model(route: str, batch: int, ms: float) -> dict:
    return {"step": "model", "route": route, "dtype": "fp16", "batch": batch, "ms": ms,
            "img_s": 1000 * batch / ms}  # fmt: skip


def test_summary_figures_and_ceiling(tmp_path: Path) -> None:
    log = tmp_path / "tests.log"
    log.write_text("a.py::t1 PASSED\na.py::t2 FAILED\na.py::t3 PASSED\nb.py::t4 SKIPPED (x)\n")
    rows = [
        {"step": "preflight", "ok": True, "line": "preflight: 45 modules import"},
        _model("resnet", 1, 0.7), _model("resnet", 128, 9.0),
        _model("eager", 1, 1.4), _model("eager", 128, 13.0),
        _model("triton", 1, 1.2), _model("triton", 128, 10.0),
        {"step": "ready", "seconds": 41.5, "backend": "triton"},
        {"step": "e2e", "level": 64, "images_per_s": 2900.0, "server_cpu_s_per_image": 0.0055},
        {"step": "e2e", "level": 256, "images_per_s": 3000.0, "server_cpu_s_per_image": 0.005},
        {"step": "busy", "gpu_util_median_pct": 41.0, "engine_busy_pct": 38.0},
        pytest_row(log),
        {"step": "tests", "failed": True, "rc": 1, "why": "exit"},
    ]  # fmt: skip
    best = best_route(rows)
    assert best is not None and best["route"] == "triton"
    table = summary(rows, cores=16)
    assert "| tests/cuda | 2 passed, 1 failed, 1 skipped |" in table
    assert "(triton fp16) | b1 1.20 ms, b128 12,800 img/s |" in table
    assert "| SANet-50 / ResNet-50 img/s at b128 | 0.90x |" in table
    assert "16 cores x 1000 / 5.00 ms | 3,200 img/s beside 3,000 measured (94%) |" in table
    assert "41 % (nvidia-smi median); engine busy 38 %" in table
    assert "| start to ready | 41.5 s (backend triton) |" in table
    assert "| failed steps | tests (exit, rc 1) |" in table
