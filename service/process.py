"""Small helpers for the processes of the tree: names that ``ps``, ``top`` and metrics show."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)
_PR_SET_NAME = 15  # prctl option (linux/prctl.h)


def set_process_name(name: str) -> None:
    """Name this process (``/proc/<pid>/comm``, at most 15 bytes); a no-op off Linux."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        log.debug("cannot set the process name to %s", name)
