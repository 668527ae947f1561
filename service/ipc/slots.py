"""The shared-memory slot ring: where front ends put image crops and the engine reads them.

One anonymous shared mapping, made by the supervisor before it forks anything, so every
process of the tree sees the same bytes (no ``/dev/shm`` file, nothing to clean up after a
crash). It holds

- ``owners``: int32 per slot, 0 when free, else the pid of the front end that holds it;
- ``pixels``: one uint8 (224, 224, 3) crop per slot. A float32 (3, 224, 224) input (KServe
  v2 ``INPUT``) takes ``F32_SLOTS`` = 4 slots, its bytes spread over them in order.

The free slots are the admission budget of the whole pod: a front end reserves the slots of
a request before it decodes anything (``reserve``), and none free means 503 at once. A front
end frees its slots when the engine has answered; the engine frees those of a front end that
died. Reservations take an ``flock`` on a file of the run directory, which the kernel releases
when a process dies, so a front end killed mid-reservation cannot wedge the others.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from service.errors import QueueFull

SIDE = 224
CROP_SHAPE = (SIDE, SIDE, 3)
SLOT_BYTES = SIDE * SIDE * 3
F32_SHAPE = (3, SIDE, SIDE)
F32_SLOTS = 4  # float32 is 4 bytes per value: one float input fills four uint8 slots
_OWNER_BYTES = 4


class SlotRing:
    """``n`` crop slots in memory shared by the process tree (see the module docstring)."""

    def __init__(self, n: int, lock_path: Path) -> None:
        if n < 1:
            raise ValueError("a slot ring needs at least one slot")
        self.n = n
        self.lock_path = lock_path
        lock_path.touch(exist_ok=True)
        header = -(-n * _OWNER_BYTES // 64) * 64  # keep the pixels cache-line aligned
        self._map = mmap.mmap(-1, header + n * SLOT_BYTES)  # MAP_SHARED | MAP_ANONYMOUS
        self.owners = np.frombuffer(self._map, dtype=np.int32, count=n)
        self.pixels = np.frombuffer(self._map, np.uint8, n * SLOT_BYTES, header).reshape(
            n, *CROP_SHAPE
        )
        self._lock_fd: int | None = None
        self._lock_pid = 0

    # -- the lock: one open file per process, so flock excludes processes -------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_pid != os.getpid():  # forked: open our own description of the file
            self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CLOEXEC)
            self._lock_pid = os.getpid()
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- front ends --------------------------------------------------------------------------
    def reserve(self, k: int, owner: int) -> list[int]:
        """``k`` free slots for ``owner`` (a pid), or ``QueueFull``: the admission decision."""
        with self._locked():
            free = np.flatnonzero(self.owners == 0)
            if len(free) < k:
                raise QueueFull()
            taken = free[:k]
            self.owners[taken] = owner
        return [int(i) for i in taken]

    def free(self, slots: Sequence[int]) -> None:
        """Give slots back (their holder only: one int32 store each, no lock needed)."""
        if slots:
            self.owners[list(slots)] = 0

    # -- the engine --------------------------------------------------------------------------
    def reclaim(self, owner: int) -> int:
        """Free every slot ``owner`` (a front end that went away) holds; how many."""
        with self._locked():
            held = self.owners == owner
            count = int(held.sum())
            self.owners[held] = 0
        return count

    def full(self) -> bool:
        """No slot free now (a lock-free peek: admission still decides under the lock)."""
        return bool(self.owners.all())

    def used(self) -> int:
        """Slots held now (scraped as sanet_slots_used)."""
        return int(np.count_nonzero(self.owners))

    # -- data --------------------------------------------------------------------------------
    def crop(self, slot: int) -> np.ndarray:
        """The uint8 (224, 224, 3) view of one slot (write a crop into it)."""
        return self.pixels[slot]

    def put_f32(self, slots: Sequence[int], array: np.ndarray) -> None:
        """Spread one float32 (3, 224, 224) input over its ``F32_SLOTS`` slots."""
        raw = np.ascontiguousarray(array, dtype=np.float32).view(np.uint8).reshape(F32_SLOTS, -1)
        for part, slot in zip(raw, slots, strict=True):
            self.pixels[slot].reshape(-1)[:] = part

    def get_f32(self, slots: Sequence[int], out: np.ndarray) -> None:
        """Gather one float32 input from its slots into ``out`` (float32 (3, 224, 224))."""
        flat = out.reshape(-1).view(np.uint8).reshape(F32_SLOTS, -1)
        for i, slot in enumerate(slots):
            flat[i] = self.pixels[slot].reshape(-1)
