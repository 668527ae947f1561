"""The KEDA overlay: its ScaledObject passes KEDA's own CRD schema and says what the HPA says.

KEDA's CRD schema comes as pydantic models generated from it (PyPI ``cloudcoil.models.keda``,
KEDA 2.16): a document that parses and dumps back unchanged has only fields KEDA knows, of the
right types. (``kubernetes-validate`` knows only built-in kinds.) The live equivalence of the
two queries is asserted in test_autoscaling.py against a real Prometheus.
"""

from __future__ import annotations

import re

import pytest
import yaml

from testing.ci import skip_or_fail
from testing.paths import K8S_DIR
from testing.tools import kustomize, rendered_kind

OVERLAY = K8S_DIR / "overlays" / "keda"


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict]:
    return {d["kind"]: d for d in kustomize(OVERLAY)}


def _cpu_hpa() -> dict:
    return rendered_kind(K8S_DIR / "overlays" / "cpu", "HorizontalPodAutoscaler")


def test_scaled_object_passes_the_keda_crd_schema(rendered):
    try:
        from cloudcoil.models.keda.v1alpha1 import ScaledObject
    except ImportError:
        skip_or_fail("cloudcoil.models.keda (the KEDA CRD models) is not installed")
    doc = rendered["ScaledObject"]
    parsed = ScaledObject.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc
    typo = {**doc, "spec": {**doc["spec"], "minReplicas": 3}}  # the HPA's name, not KEDA's
    assert ScaledObject.model_validate(typo).model_dump(by_alias=True, exclude_unset=True) != typo
    broken = {**doc, "spec": {**doc["spec"], "maxReplicaCount": "many"}}
    with pytest.raises(ValueError):
        ScaledObject.model_validate(broken)


def test_keda_replaces_the_hpa(rendered):
    assert "HorizontalPodAutoscaler" not in rendered  # KEDA creates and owns its own
    target = rendered["ScaledObject"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        rendered["Deployment"]["metadata"]["name"],
    )


def test_keda_scales_like_the_hpa(rendered):
    spec, hpa = rendered["ScaledObject"]["spec"], _cpu_hpa()["spec"]
    (metric,) = hpa["metrics"]
    (trigger,) = spec["triggers"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa["behavior"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == metric["pods"]["target"]["type"] == "AverageValue"
    target = str(metric["pods"]["target"]["averageValue"])
    assert float(trigger["metadata"]["threshold"]) == float(target.removesuffix("m")) / 1000


def test_keda_query_is_the_adapter_rule_summed_over_pods(rendered):
    values = yaml.safe_load((K8S_DIR / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = [
        r for r in values["rules"]["custom"] if r["name"]["as"] == "sanet_inference_utilisation"
    ]
    series = rule["seriesQuery"].split("{", 1)[0]
    (trigger,) = rendered["ScaledObject"]["spec"]["triggers"]
    query = trigger["metadata"]["query"]
    window = re.search(r"\[(\w+)\]", rule["metricsQuery"]).group(1)
    assert query == f'sum(rate({series}{{job="sanet"}}[{window}]))'
