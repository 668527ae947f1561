"""Prometheus config and rules: promtool checks and the promtool unit tests of every alert."""

import yaml

from testing.paths import PROM_DIR
from testing.tools import require_tool, run_tool

RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
ALERT_TESTS = PROM_DIR / "tests" / "alerts_test.yml"


def _alert_names() -> set[str]:
    """Every alert defined in the project's rule files."""
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["alert"] for r in group["rules"] if "alert" in r)
    return names


def test_config_is_valid():
    out = run_tool([require_tool("promtool"), "check", "config", str(PROM_DIR / "prometheus.yml")])
    assert "SUCCESS" in out


def test_rules_are_valid():
    assert RULE_FILES, "no rule files under deploy/prometheus/rules"
    run_tool([require_tool("promtool"), "check", "rules", *map(str, RULE_FILES)])


def test_promtool_unit_tests_pass():
    out = run_tool([require_tool("promtool"), "test", "rules", str(ALERT_TESTS)])
    assert "SUCCESS" in out


def test_every_alert_has_a_firing_unit_test():
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert _alert_names() == firing


def test_config_loads_every_rule_file():
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    loaded = {PROM_DIR / name for name in config["rule_files"]}
    assert loaded == set(RULE_FILES)
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert "sanet" in jobs  # alerts, dashboard and adapter select job="sanet"
