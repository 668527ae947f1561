"""Dockerfile, .dockerignore and the container health check."""

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from testing.paths import DEPLOY, REPO
from testing.tools import require_tool, run_tool

DOCKERFILE = (REPO / "Dockerfile").read_text()
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"


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


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers /readyz with the status stored on the server."""

    def do_GET(self) -> None:
        code = self.server.ready_status if self.path == "/readyz" else 404  # type: ignore[attr-defined]
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def _fake_service(status: int) -> Iterator[int]:
    """Serve /readyz with `status` on a free loopback port; yield the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.ready_status = status  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(port: int) -> int:
    """Exit code of the container health check pointed at `port`."""
    env = {"SANET_PORT": str(port), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=10, check=False)
    return proc.returncode


def test_healthcheck_follows_readyz():
    with _fake_service(200) as port:
        assert _run_healthcheck(port) == 0
    with _fake_service(503) as port:
        assert _run_healthcheck(port) == 1
    assert _run_healthcheck(port) == 1  # nothing listens any more
