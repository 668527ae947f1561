"""Processes found by a tag in their environment: what a test started, wherever it went.

A test starts a process tree with ``TAG_VAR=<uuid>`` in its environment; every descendant
inherits it, including one orphaned when its parent died. ``tagged(tag)`` lists those still
alive (zombies left out) by reading ``/proc/<pid>/environ`` (Linux; own processes only).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

TAG_VAR = "SANET_TEST_TAG"


def new_tag() -> dict[str, str]:
    """A fresh tag as an environment entry."""
    return {TAG_VAR: uuid.uuid4().hex}


def tagged(env: dict[str, str]) -> list[int]:
    """Pids of the live processes whose environment holds ``env``'s tag."""
    needle = f"{TAG_VAR}={env[TAG_VAR]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z":
                    found.append(int(entry.name))
    return found
