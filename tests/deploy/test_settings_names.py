"""Every SANET_* variable the deployment files set is a real setting of the service."""

import re

from service.config import Settings
from testing.paths import DEPLOY, REPO

FILES = [
    REPO / "Dockerfile",
    REPO / "docker-compose.yml",
    *sorted((DEPLOY / "k8s").rglob("*.yaml")),
]


def test_deploy_files_set_only_known_settings():
    fields = set(Settings.model_fields)
    unknown = {
        f"{path.relative_to(REPO)}: {name}"
        for path in FILES
        for name in re.findall(r"\bSANET_([A-Z0-9_]+)", path.read_text())
        if name.lower() not in fields
    }
    assert not unknown
