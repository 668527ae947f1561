"""Grafana: the dashboard validates against the schema generated from @grafana/schema, and
its provisioning points at the datasource and folder the compose file mounts."""

import json
import re

import jsonschema
import pytest
import yaml

from testing.paths import GRAFANA_DIR

DASHBOARD = GRAFANA_DIR / "dashboards" / "sanet.json"
SCHEMA = GRAFANA_DIR / "schema" / "dashboard.schema.json"
PROVISIONING = GRAFANA_DIR / "provisioning"

# What the dashboard must show: a metric each panel group reads.
REQUIRED_METRICS = (
    "sanet_requests",
    "sanet_request_duration_seconds",
    "sanet_queue_wait_seconds",
    "sanet_inference_seconds",
    "sanet_batch_size",
    "sanet_queue_depth",
    "sanet_rejected_total",
    "sanet_images",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "sanet_model_info",
)


@pytest.fixture(scope="module")
def dashboard() -> dict:
    """The provisioned dashboard JSON."""
    return json.loads(DASHBOARD.read_text())


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_matches_grafana_schema(dashboard):
    schema = json.loads(SCHEMA.read_text())
    assert "@grafana/schema" in schema["$comment"]
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(dashboard), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_dashboard(dashboard):
    broken = {**dashboard, "panels": [{**dashboard["panels"][0], "gridPos": {"x": 0}}]}
    assert list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))


def test_panels_cover_every_required_metric(dashboard):
    exprs = " ".join(expr for _, expr in panel_queries(dashboard))
    missing = [m for m in REQUIRED_METRICS if m not in exprs]
    assert not missing


def test_panels_are_unique_documented_and_laid_out(dashboard):
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_queries_use_the_provisioned_datasource(dashboard):
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}


def test_recording_rules_used_by_panels_exist(dashboard):
    rules = yaml.safe_load((GRAFANA_DIR.parent / "prometheus/rules/recording.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"]}
    used = {
        name for _, expr in panel_queries(dashboard) for name in re.findall(r"[\w]+:[\w:]+", expr)
    }
    assert used <= recorded


def test_dashboard_provider_points_at_the_mounted_folder():
    config = yaml.safe_load((PROVISIONING / "dashboards" / "sanet.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
