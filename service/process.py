"""Small helpers for the processes of the tree: names that ``ps``, ``top`` and metrics show."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading

log = logging.getLogger(__name__)
_PR_SET_NAME = 15  # prctl options (linux/prctl.h)
_PR_SET_PDEATHSIG = 1


def set_process_name(name: str) -> None:
    """Name this process (``/proc/<pid>/comm``, at most 15 bytes); a no-op off Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("cannot set the process name to %s", name)


def die_with_parent(parent: int) -> None:
    """SIGTERM this process when ``parent`` (the supervisor) dies, even by SIGKILL; exit at
    once if it already has. A no-op off Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("cannot ask for a signal when the parent dies")
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def lower_thread_priority(nice: int) -> None:
    """Schedule the calling thread ``nice`` steps below the process's other threads (Linux
    gives each thread its own nice value); a no-op where that is not possible. Meant as a
    thread pool's initializer."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except (OSError, AttributeError):
        log.debug("cannot lower the priority of thread %s", threading.current_thread().name)
