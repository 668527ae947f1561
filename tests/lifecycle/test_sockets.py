"""Which process holds the pod's HTTP port: the front ends, never the engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from service.front.tree_metrics import read_process, tree_pids
from testing.servers import Spawned

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
            inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:[") : -1])
    return out


def test_the_engine_does_not_hold_the_http_port(launch: Callable[..., Spawned]) -> None:
    proc = launch("--models", "sanet50", "--backend", "null", "--workers", "1")
    proc.wait_ready()
    port = _listening_inodes(proc.port)
    assert port, "no listening socket on the service's port"
    names = {pid: (read_process(pid) or ("gone",))[0] for pid in tree_pids(proc.popen.pid)}
    engines = [pid for pid, name in names.items() if "engine" in name]
    fronts = [pid for pid, name in names.items() if "front" in name]
    assert engines and fronts, names
    assert all(port & _socket_inodes(pid) for pid in fronts)
    assert not any(port & _socket_inodes(pid) for pid in engines)
