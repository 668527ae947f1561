"""A cache of compiled artefacts (ONNX exports, and any engine file) that heals itself.

    cache = ArtefactCache(cache_dir)                 # writable, or a private temp dir
    runner = cache.load_or_build("key-v3.onnx", build=export_to, load=open_session)

- A cached file that fails to load (truncated by a full disk or a killed copy) is moved
  aside as ``<name>.corrupt`` and rebuilt once; a rebuilt file that fails again raises.
- A cache dir that cannot be written falls back to a private temporary dir, with a warning:
  the service starts, it only exports again on the next start.
- Files are built as ``.partial-<pid>-<token>`` and renamed into place. Each process that
  builds holds an exclusive ``flock`` on ``.lock-<pid>`` for its lifetime; at start, partials
  whose lock is free belong to a dead process and are removed. The kernel drops the lock
  with the process, so this holds across container restarts that reuse a PID, where a PID
  check or a file's age would guess.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
PARTIAL_PREFIX = ".partial-"
LOCK_PREFIX = ".lock-"
CORRUPT_SUFFIX = ".corrupt"

_held: dict[Path, IO[bytes]] = {}  # this process's lock file per folder, open while it lives


def _lock_path(folder: Path, pid: int) -> Path:
    return folder / f"{LOCK_PREFIX}{pid}"


def _hold_lock(folder: Path) -> None:
    """Take this process's lock in ``folder`` (once); it is released when the process ends."""
    folder = folder.resolve()
    if folder in _held:
        return
    handle = _lock_path(folder, os.getpid()).open("wb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[folder] = handle


def partial_path(folder: Path, suffix: str = "") -> Path:
    """A fresh partial file name in ``folder`` owned by this process (its lock is held)."""
    folder.mkdir(parents=True, exist_ok=True)
    _hold_lock(folder)
    return folder / f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _owner_alive(folder: Path, pid: int) -> bool:
    if pid == os.getpid() and folder.resolve() in _held:
        return True
    try:
        with _lock_path(folder, pid).open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: its holder is gone
    except FileNotFoundError:
        return False
    except OSError:  # held (EWOULDBLOCK): a live process builds there
        return True
    return False


def remove_orphans(folder: Path) -> list[Path]:
    """Remove partial files (and lock files) of processes that no longer run; returns them."""
    removed: list[Path] = []
    for partial in folder.glob(PARTIAL_PREFIX + "*"):
        pid_text = partial.name[len(PARTIAL_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or not _owner_alive(folder, int(pid_text)):
            with contextlib.suppress(OSError):
                partial.unlink()
                removed.append(partial)
    for lock in folder.glob(LOCK_PREFIX + "*"):
        pid_text = lock.name[len(LOCK_PREFIX) :]
        if pid_text.isdigit() and not _owner_alive(folder, int(pid_text)):
            with contextlib.suppress(OSError):
                lock.unlink()
    if removed:
        log.info("removed %d partial file(s) of dead processes in %s", len(removed), folder)
    return removed


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=PARTIAL_PREFIX + "probe-"):
            return True
    except OSError:
        return False


class ArtefactCache:
    """Compiled artefacts under one folder; see the module docstring."""

    def __init__(self, folder: str | Path | None) -> None:
        wanted = Path(folder).expanduser() if folder is not None else None
        if wanted is not None and _writable(wanted):
            self.folder, self.private = wanted, False
        else:
            self.folder = Path(tempfile.mkdtemp(prefix="sanet-cache-"))
            self.private = True
            if wanted is not None:
                log.warning(
                    "cache dir %s is not writable: using %s for this process (compiled "
                    "artefacts are rebuilt on every start until it is)",
                    wanted,
                    self.folder,
                )
        remove_orphans(self.folder)

    def path(self, name: str) -> Path:
        return self.folder / name

    def load_or_build(
        self, name: str, build: Callable[[Path], object], load: Callable[[Path], T]
    ) -> T:
        """``load`` the cached ``name``; build it (``build(path)`` writes the file) when it is
        missing, or once more when the cached copy fails to load."""
        path = self.path(name)
        if path.is_file():
            try:
                return load(path)
            except Exception as exc:  # any loader's error: the file is what is wrong
                aside = path.with_name(path.name + CORRUPT_SUFFIX)
                os.replace(path, aside)
                log.warning(
                    "cached %s failed to load (%s): moved aside to %s, rebuilding once",
                    path,
                    type(exc).__name__,
                    aside.name,
                )
        tmp = partial_path(self.folder, path.suffix)
        try:
            build(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return load(path)
