"""Dockerfile, .dockerignore and the container health check (run against the real app)."""

import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from testing.images import image_bytes
from testing.paths import DEPLOY, REPO
from testing.tools import require_tool, run_tool
from testing.waiting import poll

DOCKERFILE = (REPO / "Dockerfile").read_text()
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"
JPEG = {"Content-Type": "image/jpeg"}


def _instructions(keyword: str) -> list[str]:
    """Arguments of every Dockerfile instruction `keyword`, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return re.findall(rf"^{keyword}\s+(.*)$", text, flags=re.MULTILINE)


def test_hadolint_clean():
    run_tool([require_tool("hadolint"), str(REPO / "Dockerfile")])


def test_multi_stage_with_venv_copied_into_runtime():
    stages = _instructions("FROM")
    assert len(stages) >= 2
    assert any("--from=build /opt/venv /opt/venv" in c for c in _instructions("COPY"))


def test_runtime_runs_non_root_and_exposes_http_and_grpc():
    user = _instructions("USER")[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert _instructions("EXPOSE") == ["8000 8001"]
    assert any("/models" in v for v in _instructions("VOLUME"))


def test_healthcheck_uses_readyz_script():
    (check,) = _instructions("HEALTHCHECK")
    assert "/opt/sanet/healthcheck.py" in check
    assert "/readyz" in HEALTHCHECK.read_text()


def test_torch_source_is_a_build_argument():
    args = " ".join(_instructions("ARG"))
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in args
    assert "TORCH_VERSION=" in args


def test_dockerignore_allows_only_what_the_build_reads():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    for needed in ("!pyproject.toml", "!model/", "!service/", "!deploy/docker/", "!deploy/wheels/"):
        assert needed in rules


def _run_healthcheck(port: int) -> int:
    """Exit code of the container health check pointed at `port`."""
    env = {"SANET_PORT": str(port), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=10, check=False)
    return proc.returncode


def test_healthcheck_follows_readyz(serve: Callable[..., Any]) -> None:
    """Against the real tree: ready, draining (an admitted request holds the drain open while
    the engine is stopped), and gone."""
    with serve() as running, ThreadPoolExecutor(1) as pool, running.engine_held() as hold:
        assert _run_healthcheck(running.port) == 0
        admitted = pool.submit(
            httpx.post, f"{running.url}/classify", content=image_bytes(0), headers=JPEG, timeout=60
        )
        running.wait_slots(1)
        running.terminate()
        poll(lambda: running.client.get("/readyz").status_code == 503, 10, "draining")
        assert _run_healthcheck(running.port) == 1
        hold.release()
        assert admitted.result().status_code == 200
        assert running.wait(30) == 0, running.tail()
    assert _run_healthcheck(running.port) == 1  # nothing listens any more
