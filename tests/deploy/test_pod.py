"""Live: the rendered CPU Deployment runs as a pod in a real container engine.

The image the Deployment names is built from the Dockerfile; its pod template becomes a
``docker run`` (testing.container: user and group, read-only root filesystem, dropped
capabilities, no privilege escalation, ``/tmp`` as a tmpfs emptyDir, the models claim as a
read-only bind mount, the spec's env). Only what a one-machine engine cannot take from the
spec is overridden: the checkpoint (a tiny network the test writes into the models volume),
the host/port (host networking) and the thread count. Then the probes pass at the paths the
spec names, an image is classified, and the process inside is what the spec asked for.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from testing.checkpoints import random_authors_checkpoint
from testing.container import build_image, docker_or_skip, pod_run_args
from testing.paths import K8S_DIR, SAMPLES
from testing.ports import free_port
from testing.tools import rendered_kind, run_tool
from testing.waiting import poll

CHECKPOINT = "sa_tiny.pth.tar"


@dataclass
class Pod:
    docker: str
    cid: str
    url: str
    container: dict

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker, "exec", self.cid, *cmd],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def probe(self, name: str) -> int | None:
        path = self.container[name]["httpGet"]["path"]
        try:
            return httpx.get(f"{self.url}{path}", timeout=3).status_code
        except httpx.HTTPError:
            return None


def _deployment() -> dict:
    return rendered_kind(K8S_DIR / "overlays" / "cpu", "Deployment")


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    docker = docker_or_skip()
    spec = _deployment()["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    build_image(docker, container["image"])  # the tag the Deployment names
    models = tmp_path_factory.mktemp("models")
    random_authors_checkpoint(models / CHECKPOINT)
    models.chmod(0o755)
    (models / CHECKPOINT).chmod(0o644)
    port = free_port()
    env = {
        "SANET_MODELS": f"sanet_tiny=/models/{CHECKPOINT}",
        "SANET_HOST": "127.0.0.1",
        "SANET_PORT": str(port),
        "SANET_THREADS": "1",
    }
    args = pod_run_args(spec, {"sanet-models": models}, env)
    cid = run_tool([docker, "run", "-d", "--network", "host", *args, container["image"]]).strip()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(
            subprocess.run, [docker, "rm", "-f", cid], capture_output=True, check=False
        )
        yield Pod(docker, cid, f"http://127.0.0.1:{port}", container)


def test_pod_passes_its_probes_and_classifies(pod: Pod):
    startup = pod.container["startupProbe"]
    within = startup["periodSeconds"] * startup["failureThreshold"]
    poll(lambda: pod.probe("startupProbe") == 200, within, "the startup probe")
    assert pod.probe("livenessProbe") == 200
    poll(lambda: pod.probe("readinessProbe") == 200, within, "the readiness probe")
    body = (SAMPLES / "coffee.jpg").read_bytes()
    r = httpx.post(
        f"{pod.url}/classify?top_k=3", content=body, headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert len(result["predictions"]) == 3
    (model,) = httpx.get(f"{pod.url}/v1/models").json()["models"]
    assert model["weights"]["path"] == f"/models/{CHECKPOINT}"


def test_pod_runs_as_its_security_context(pod: Pod):
    poll(lambda: pod.probe("readinessProbe") == 200, 300, "the pod to be ready")
    assert pod.exec("id", "-u").stdout.strip() == "10001"
    assert pod.exec("touch", "/opt/written").returncode != 0  # read-only root filesystem
    assert pod.exec("touch", "/models/written").returncode != 0  # read-only models volume
    assert pod.exec("touch", "/tmp/written").returncode == 0  # the emptyDir
    status = pod.exec("cat", "/proc/1/status").stdout
    caps = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if "Cap" in line}
    assert int(caps["CapEff"], 16) == 0  # capabilities.drop: ALL
    assert "NoNewPrivs:\t1" in status
