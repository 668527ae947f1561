"""A real Prometheus for tests: the project's config and rules, the test's targets and clock.

``write_config`` copies ``deploy/prometheus/prometheus.yml`` and its rule files with short
intervals (and 1 s ``for`` clauses), pointing the ``sanet`` job at the given targets;
``start`` runs the Debian/upstream binary on a free port; ``PromClient`` queries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import yaml

from testing.paths import PROM_DIR
from testing.ports import free_port
from testing.servers import Spawned


class PromClient:
    """Minimal client of the Prometheus HTTP API (instant queries and alerts)."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=5)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Result vector of an instant query (at unix time ``at``); raises on a query error."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        body = self.http.get("/api/v1/query", params=params).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def by_label(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        """An instant vector as {value of ``label``: sample value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def alerts(self) -> list[dict]:
        """Alerts Prometheus currently holds (pending or firing)."""
        return self.http.get("/api/v1/alerts").json()["data"]["alerts"]

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.http.close()


def write_config(
    tmp: Path, sanet_targets: Sequence[str], prom_port: int, interval: str = "1s"
) -> Path:
    """The project's config and rules with ``interval`` scrapes, the test's targets, 1 s ``for``."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    targets = {"sanet": list(sanet_targets), "prometheus": [f"127.0.0.1:{prom_port}"]}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    rule_files = []
    for name in config["rule_files"]:
        rules = yaml.safe_load((PROM_DIR / name).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = "1s"
        path = tmp / Path(name).name
        path.write_text(yaml.safe_dump(rules))
        rule_files.append(str(path))
    config["rule_files"] = rule_files
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def start(binary: str, tmp: Path, sanet_targets: Sequence[str]) -> Spawned:
    """Prometheus with the project's config (test targets and intervals), not yet ready."""
    port = free_port()
    config = write_config(tmp, sanet_targets, port)
    cmd = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return Spawned(cmd, tmp / "prometheus.log", port=port, ready_path="/-/ready")


def adapter_query(metrics_query: str, series: str, group_by: str, matchers: str) -> str:
    """A prometheus-adapter ``metricsQuery`` template filled in the way the adapter does."""
    return (
        metrics_query.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", matchers)
        .replace("<<.GroupBy>>", group_by)
    )
