"""Kubernetes manifests: each overlay renders with kustomize; built-in kinds pass
kubernetes-validate --strict; the Prometheus Operator objects are checked here."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from testing.paths import K8S_DIR, PROM_DIR
from testing.tools import kustomize, require_tool, run_tool

OVERLAYS = ("cpu", "gpu")
CRD_GROUPS = ("monitoring.coreos.com/",)
DRAIN_TIMEOUT_S = 30  # SANET_DRAIN_TIMEOUT_S in the manifests and the service default


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> dict[str, dict]:
    """The overlay rendered by `kubectl kustomize`, as {kind: object}."""
    overlay = K8S_DIR / "overlays" / request.param
    docs = kustomize(overlay)
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object per kind expected"
    by_kind["_overlay"] = {"name": request.param}
    return by_kind


def _container(rendered: dict) -> dict:
    """The sanet container of the rendered Deployment."""
    (container,) = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _env(rendered: dict) -> dict[str, str]:
    """The container's environment as a dict."""
    return {e["name"]: e["value"] for e in _container(rendered)["env"]}


def test_builtin_kinds_validate_strictly(rendered, tmp_path: Path):
    builtin = [
        obj
        for kind, obj in rendered.items()
        if not kind.startswith("_") and not obj["apiVersion"].startswith(CRD_GROUPS)
    ]
    assert {o["kind"] for o in builtin} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    manifest = tmp_path / "builtin.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    out = run_tool([require_tool("kubernetes-validate"), "--strict", str(manifest)])
    assert out.count("passed") == len(builtin), out


def test_deployment_probes_resources_and_drain(rendered):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    container = _container(rendered)
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert "preStop" in container["lifecycle"]
    assert int(_env(rendered)["SANET_DRAIN_TIMEOUT_S"]) == DRAIN_TIMEOUT_S
    assert pod["terminationGracePeriodSeconds"] > DRAIN_TIMEOUT_S + 5  # + preStop pause


def test_deployment_is_non_root_with_read_only_root(rendered):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    sc = _container(rendered)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m for m in _container(rendered)["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert "/tmp" in mounts  # torch and Python need a writable scratch dir
    assert _env(rendered)["SANET_MODELS"].split("=", 1)[1].startswith("/models/")


def test_overlay_device(rendered):
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    limits = _container(rendered)["resources"]["limits"]
    if rendered["_overlay"]["name"] == "gpu":
        assert _env(rendered)["SANET_DEVICE"] == "cuda"
        assert limits["nvidia.com/gpu"] == 1
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    else:
        assert _env(rendered)["SANET_DEVICE"] == "cpu"
        assert "nvidia.com/gpu" not in limits
        assert "tolerations" not in pod


def test_service_pdb_and_hpa_select_the_deployment(rendered):
    deployment = rendered["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        rendered["Service"]["spec"]["selector"],
        rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    target = rendered["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_hpa_metric_is_served_by_the_adapter_rules(rendered):
    (metric,) = rendered["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    values = yaml.safe_load((K8S_DIR / "prometheus-adapter" / "values.yaml").read_text())
    served = {rule["name"]["as"]: rule for rule in values["rules"]["custom"]}
    assert name in served
    rule = served[name]
    series = re.match(r"\w+", rule["seriesQuery"]).group(0)
    assert re.fullmatch(rule["name"]["matches"].strip("^$"), series)
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    # the signal is a rate of the busy counter, over a window of several scrapes (15 s)
    if name == "sanet_inference_utilisation":
        assert series == "sanet_inference_busy_seconds_total"
        assert "rate(<<.Series>>{<<.LabelMatchers>>}[1m])" in rule["metricsQuery"]
    target = metric["pods"]["target"]
    assert target["type"] == "AverageValue"


def test_hpa_bounds_come_from_the_overlay(rendered):
    spec = rendered["HorizontalPodAutoscaler"]["spec"]
    bounds = {"cpu": (2, 10), "gpu": (1, 4)}[rendered["_overlay"]["name"]]
    assert (spec["minReplicas"], spec["maxReplicas"]) == bounds
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]


def test_service_monitor_scrapes_the_service(rendered):
    service = rendered["Service"]
    monitor = rendered["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    # job label = Service name; the alerts and dashboard select job="sanet"
    assert service["metadata"]["name"] == "sanet"


def test_prometheus_rule_equals_the_rule_files(rendered):
    rule = rendered["PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    expected = []
    for name in ("recording.yml", "alerts.yml"):
        expected += yaml.safe_load((PROM_DIR / "rules" / name).read_text())["groups"]
    assert rule["spec"]["groups"] == expected, "run: python deploy/k8s/sync_rules.py"


def test_prometheus_rule_file_is_what_sync_rules_writes():
    spec = importlib.util.spec_from_file_location("sync_rules", K8S_DIR / "sync_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S_DIR / "base" / "prometheusrule.yaml").read_text() == module.render()


def test_service_exposes_the_grpc_port(rendered):
    ports = {p["name"]: p for p in rendered["Service"]["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in _container(rendered)["ports"]}
    assert ports["grpc"]["targetPort"] == "grpc" and ports["grpc"]["appProtocol"] == "grpc"
    assert int(_env(rendered)["SANET_GRPC_PORT"]) == container_ports["grpc"]
