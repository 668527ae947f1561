"""The GPU overlay is sized by docs/deploy.md's arithmetic: cores = target img/s x CPU ms per
photo / 1000, plus the engine's core; its batch and queue are the GPU defaults."""

from __future__ import annotations

import math
import re

from service.config import Settings
from testing.paths import K8S_DIR, REPO
from testing.tools import rendered_kind

FORMULA = re.compile(
    r"cores = ([\d,]+) img/s x ([\d.]+) ms / 1000 \+ (\d+) = (\d+)"
)  # as docs/deploy.md writes it


def _gpu_container() -> dict:
    deployment = rendered_kind(K8S_DIR / "overlays" / "gpu", "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_overlay_cpu_follows_the_documented_formula() -> None:
    found = FORMULA.search((REPO / "docs" / "deploy.md").read_text())
    assert found, "docs/deploy.md states cores = <target> img/s x <ms> ms / 1000 + <n> = <cores>"
    target, ms, engine, stated = found.groups()
    cores = math.ceil(int(target.replace(",", "")) * float(ms) / 1000) + int(engine)
    assert cores == int(stated)
    resources = _gpu_container()["resources"]
    assert int(resources["requests"]["cpu"]) == int(resources["limits"]["cpu"]) == cores
    assert resources["limits"]["nvidia.com/gpu"] == 1


def test_overlay_serves_with_the_gpu_defaults() -> None:
    env = {e["name"]: e["value"] for e in _gpu_container()["env"]}
    assert not {"SANET_MAX_BATCH_SIZE", "SANET_MAX_QUEUE", "SANET_PRECISION"} & set(env)
    settings = Settings(**{k.removeprefix("SANET_").lower(): v for k, v in env.items()})
    cuda = Settings(device="cuda")
    assert settings.device == "cuda"
    assert (settings.max_batch_size, settings.max_queue) == (cuda.max_batch_size, cuda.max_queue)
    assert (settings.precision, settings.max_batch_size, settings.max_queue) == ("fp16", 128, 512)
