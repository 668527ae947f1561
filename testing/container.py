"""A container engine for tests: build the project's image, run a Kubernetes pod spec in it.

``docker_or_skip`` finds the CLI and an engine that answers (``DOCKER_HOST``; ``.ci/run``
starts deploy/sandbox/container-sandbox.sh). ``build_image`` builds the Dockerfile, with the
CPU torch wheel from pip's find-links when the machine keeps one (as deploy/docker-smoke.sh
does). ``pod_run_args`` turns a rendered Deployment's pod template into ``docker run``
flags, field by field, failing on a field it does not know how to honour.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from testing.ci import skip_or_fail
from testing.paths import REPO
from testing.tools import require_tool

WHEELS = REPO / "deploy" / "wheels"


def docker_or_skip() -> str:
    """The docker CLI, once an engine answers; else skip (fail in CI)."""
    docker = require_tool("docker")
    probe = subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        skip_or_fail("no container engine answers (start deploy/sandbox/container-sandbox.sh up)")
    return docker


def _cpu_wheel() -> Path | None:
    out = subprocess.run(
        ["pip3", "config", "list"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    for line in out.splitlines():
        if "find-links" in line:
            for folder in line.split("=", 1)[1].strip("'\"").split():
                wheels = sorted(Path(folder).glob("torch-*+cpu-cp311-*.whl"))
                if wheels:
                    return wheels[-1]
    return None


def build_image(docker: str, tag: str, timeout: float = 1500) -> str:
    """Build the Dockerfile as ``tag`` (layers cached by the engine); return the build log."""
    args = [docker, "build", "--network", "host", "-t", tag]
    wheel = _cpu_wheel()
    copied = None
    if wheel is not None:
        copied = WHEELS / wheel.name
        shutil.copy2(wheel, copied)  # copy2 keeps the mtime: the layer cache hits
        version = wheel.name.split("-")[1]
        args += ["--build-arg", "TORCH_INDEX=https://pypi.org/simple"]
        args += ["--build-arg", f"TORCH_VERSION={version}"]
    try:
        proc = subprocess.run(
            [*args, str(REPO)], capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        if copied is not None:
            copied.unlink(missing_ok=True)
    assert proc.returncode == 0, f"docker build failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return proc.stdout


def pod_run_args(pod: dict[str, Any], volumes: dict[str, Path], env: dict[str, str]) -> list[str]:
    """``docker run`` flags for the pod's one container; ``volumes``: claim name -> host dir.

    Honoured: runAsUser/runAsGroup, runAsNonRoot (checked), readOnlyRootFilesystem,
    capabilities.drop, allowPrivilegeEscalation, emptyDir (a tmpfs of its sizeLimit), PVCs
    (bind mounts, read-only when the mount is), env (``env`` overrides entries).
    """
    (container,) = pod["containers"]
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    user, group = csc.get("runAsUser", psc.get("runAsUser")), psc.get("runAsGroup")
    assert psc.get("runAsNonRoot") and user not in (None, 0), "the pod must run as non-root"
    args = ["--user", f"{user}:{group}" if group is not None else str(user)]
    if csc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    args += [f"--cap-drop={cap}" for cap in csc.get("capabilities", {}).get("drop", [])]
    if csc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    specs = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = specs[mount["name"]]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit", "64Mi").replace("i", "")
            args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size.lower()},mode=1777"]
        elif "persistentVolumeClaim" in volume:
            host = volumes[volume["persistentVolumeClaim"]["claimName"]]
            ro = ",readonly" if mount.get("readOnly") else ""
            args += ["--mount", f"type=bind,src={host},dst={mount['mountPath']}{ro}"]
        else:
            raise AssertionError(f"volume {volume} is not supported by this runner")
    merged = {e["name"]: e["value"] for e in container.get("env", [])} | env
    for key, value in merged.items():
        args += ["-e", f"{key}={value}"]
    return args
