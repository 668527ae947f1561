"""Scrape-time metrics of the whole process tree, read by the front end that answers /metrics.

- ``process_cpu_seconds_total{process}`` and ``process_resident_memory_bytes{process}`` for
  the supervisor, the engine and each front end (``process`` is the name each sets for
  itself: ``sanet-serve`` (the supervisor), ``sanet-engine``, ``sanet-front-<i>``), from ``/proc``;
- ``sanet_slots_used`` and ``sanet_slots_total``: the shared slot ring's occupancy, the
  admission budget of the pod (images decoded, queued or being computed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.ipc.slots import SlotRing

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_pids(root: int) -> list[int]:
    """``root`` and its children (the supervisor's tree is one level deep)."""
    pids = [root]
    for task in Path(f"/proc/{root}/task").glob("*/children"):
        try:
            pids += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return pids


def read_process(pid: int) -> tuple[str, float, int] | None:
    """(name, CPU seconds, resident bytes) of ``pid``, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
    rss = int(fields[21]) * _PAGE
    return name, cpu, rss


def pss_bytes(pid: int) -> int | None:
    """The proportional set size of ``pid`` (shared pages split among their users)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def role(name: str) -> str:
    """The part a process of the tree plays, from the name it set for itself."""
    if name.startswith("sanet-front"):
        return "front"
    return "engine" if name == "sanet-engine" else "supervisor"


class TreeCollector(Collector):
    """The process tree's CPU and memory, and the slot ring's occupancy (see module doc)."""

    def __init__(self, ring: SlotRing, root: int | None = None) -> None:
        self.ring = ring
        self.root = root if root is not None else os.getppid()

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds", "CPU seconds of each service process.", labels=["process"]
        )
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Resident memory of each service process.",
            labels=["process"],
        )
        pss = GaugeMetricFamily(
            "process_pss_bytes",
            "Proportional memory of each service process (shared pages split).",
            labels=["process", "role"],
        )
        for pid in tree_pids(self.root):
            found = read_process(pid)
            if found is not None:
                name, seconds, resident = found
                cpu.add_metric([name], seconds)
                rss.add_metric([name], resident)
                share = pss_bytes(pid)
                if share is not None:
                    pss.add_metric([name, role(name)], share)
        yield cpu
        yield rss
        yield pss
        yield GaugeMetricFamily(
            "sanet_slots_used", "Shared-memory slots held by admitted images.", self.ring.used()
        )
        yield GaugeMetricFamily(
            "sanet_slots_total", "Shared-memory slots: the pod's admission budget.", self.ring.n
        )
