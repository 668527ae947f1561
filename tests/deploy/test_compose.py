"""docker-compose.yml: validated by docker-compose itself, then its merged form checked."""

import subprocess

import pytest
import yaml

from testing.paths import REPO
from testing.tools import require_tool, run_tool


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it (`docker-compose config`)."""
    tool = require_tool("docker-compose")
    run_tool([tool, "-f", "docker-compose.yml", "config", "-q"])
    out = subprocess.run(
        [tool, "-f", "docker-compose.yml", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return yaml.safe_load(out)


def _mounts(service: dict) -> dict[str, tuple[str, str]]:
    """Map each mount target to (source, mode); docker-compose v1 prints `src:dst:mode`."""
    mounts = {}
    for volume in service["volumes"]:
        source, target, mode = (
            volume.rsplit(":", 2)
            if isinstance(volume, str)
            else (volume["source"], volume["target"], "ro" if volume.get("read_only") else "rw")
        )
        mounts[target] = (source, mode)
    return mounts


def test_services_and_ports(compose):
    services = compose["services"]
    assert set(services) == {"sanet", "prometheus", "grafana"}
    published = {
        name: {int(p["published"]) for p in svc["ports"]} for name, svc in services.items()
    }
    assert published == {"sanet": {8000, 8001}, "prometheus": {9090}, "grafana": {3000}}
    assert services["sanet"]["build"]["dockerfile"] == "Dockerfile"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")


def test_every_service_has_a_healthcheck_and_waits_for_healthy_deps(compose):
    services = compose["services"]
    for svc in services.values():
        assert svc["healthcheck"]["test"]
    assert services["prometheus"]["depends_on"]["sanet"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_models_volume_is_mounted_read_only(compose):
    assert _mounts(compose["services"]["sanet"])["/models"] == ("models", "ro")
    assert "models" in compose["volumes"]


def test_prometheus_and_grafana_read_the_project_config(compose):
    def sources(name: str) -> set[str]:
        return {source for source, _ in _mounts(compose["services"][name]).values()}

    assert str(REPO / "deploy" / "prometheus") in sources("prometheus")
    assert str(REPO / "deploy" / "grafana" / "provisioning") in sources("grafana")
    assert str(REPO / "deploy" / "grafana" / "dashboards") in sources("grafana")
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
