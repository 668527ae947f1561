"""A server's process tree from /proc: its pids, resident memory and CPU time (Linux only).

LitServe runs its HTTP server and inference worker as child processes, so a server's memory
and CPU are those of its whole tree. Forked children share pages with their parent: summed
RSS counts those pages once per process, summed PSS (``smaps_rollup``, read as the service's
``/metrics`` reads it) splits them fairly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from service.front.tree_metrics import pss_bytes, read_process

PROC = Path("/proc")


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process tree, in MiB."""

    processes: int
    rss_mb: float
    pss_mb: float


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(_stat_fields(int(entry.name))[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if (PROC / str(pid)).exists():
            found.append(pid)
            todo += children.get(pid, [])
    return found


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, ValueError):
        return False


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    """VmRSS of one process, in MiB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        return _kib(PROC / str(pid) / "status", "VmRSS:") / 1024
    return 0.0


def memory(root: int) -> Memory:
    """Summed VmRSS and Pss of the tree under ``root``."""
    rss = pss = count = 0
    for pid in tree(root):
        with contextlib.suppress(OSError):
            rss += _kib(PROC / str(pid) / "status", "VmRSS:") * 1024
            pss += pss_bytes(pid) or 0
            count += 1
    return Memory(count, rss / 2**20, pss / 2**20)


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds used so far by the live processes under ``root``."""
    read = (read_process(pid) for pid in tree(root))
    return sum(found[1] for found in read if found is not None)
