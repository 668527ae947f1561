"""What the host offers the settings: usable cores and whether an NVIDIA GPU is visible.

Read without initialising CUDA: the supervisor forks its children after settings are built.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def available_cores() -> int:
    """CPU cores this process may use: its affinity, bounded by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores or 1, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores or 1)


def gpu_present() -> bool:
    """An NVIDIA GPU is visible to this host (without initialising CUDA before a fork)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def cuda_expected() -> bool:
    """``SANET_DEVICE=auto`` will take cuda: a GPU is visible and this torch is built for CUDA
    (what ``torch.cuda.is_available()`` says later, asked without initialising CUDA)."""
    if not gpu_present():
        return False
    import torch

    return bool(torch.backends.cuda.is_built())
