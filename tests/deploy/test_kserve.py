"""deploy/k8s/kserve: the InferenceServices render with kustomize; their predictor pod spec
passes kubernetes-validate --strict (as a Pod: KServe's CRDs are not to be had here); the
probes and ports point at what the service really serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings
from service.front.app import create_app
from service.ipc.slots import SlotRing
from testing.paths import K8S_DIR
from testing.tools import kustomize, require_tool, run_tool

#: fields of a predictor that KServe adds to a PodSpec
PREDICTOR_ONLY = {
    "minReplicas",
    "maxReplicas",
    "scaleMetric",
    "scaleTarget",
    "containerConcurrency",
}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    docs = kustomize(K8S_DIR / "kserve")
    assert {d["kind"] for d in docs} == {"InferenceService"}
    return {d["metadata"]["name"]: d for d in docs}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_predictor_pod_specs_validate_strictly(services, tmp_path: Path) -> None:
    pods = []
    for name, isvc in services.items():
        assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
        spec = {k: v for k, v in isvc["spec"]["predictor"].items() if k not in PREDICTOR_ONLY}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    manifest = tmp_path / "predictors.yaml"
    manifest.write_text(yaml.safe_dump_all(pods))
    out = run_tool([require_tool("kubernetes-validate"), "--strict", str(manifest)])
    assert out.count("passed") == len(pods), out


def test_one_rest_and_one_grpc_predictor(services) -> None:
    ports = {}
    for name, isvc in services.items():
        (container,) = isvc["spec"]["predictor"]["containers"]
        assert container["name"] == "kserve-container"  # where storage is mounted
        (port,) = container["ports"]  # KServe routes exactly one
        env = _env(container)
        ports[port["name"]] = (name, port["containerPort"])
        assert env["SANET_MODELS"].split("=", 1)[1].startswith("/mnt/models/")
        assert env["STORAGE_URI"].startswith("pvc://")
        if port["name"] == "h2c":
            assert int(env["SANET_GRPC_PORT"]) == port["containerPort"]
        else:
            assert int(env["SANET_PORT"]) == port["containerPort"]
    assert set(ports) == {"http1", "h2c"}


def test_probes_are_v2_health_paths_the_app_serves(services, tmp_path) -> None:
    ring = SlotRing(1, tmp_path / "slots.lock")  # a front end's app, never started here
    app = create_app(Settings(grpc_port=0), ring, tmp_path / "engine.sock")
    served = {path for path, ops in app.openapi()["paths"].items() if "get" in ops}
    for isvc in services.values():
        (container,) = isvc["spec"]["predictor"]["containers"]
        http_port = int(_env(container)["SANET_PORT"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] in served and get["path"].startswith("/v2/health/")
            assert get["port"] == http_port
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
