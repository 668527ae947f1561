"""Every SANET_* variable the deployment files set is a real setting of the service."""

import importlib
import re

from .conftest import DEPLOY, REPO, skip_or_fail

FILES = [
    REPO / "Dockerfile",
    REPO / "docker-compose.yml",
    *sorted((DEPLOY / "k8s").rglob("*.yaml")),
]


def _settings_fields() -> set[str]:
    """Names of the service's settings (the SANET_ suffixes it reads)."""
    try:
        config = importlib.import_module("service.config")
    except ImportError:
        skip_or_fail("service.config is not importable")
    return set(config.Settings.model_fields)


def test_deploy_files_set_only_known_settings():
    fields = _settings_fields()
    unknown = {
        f"{path.relative_to(REPO)}: {name}"
        for path in FILES
        for name in re.findall(r"\bSANET_([A-Z0-9_]+)", path.read_text())
        if name.lower() not in fields
    }
    assert not unknown
