"""Memory that comes back after bursts of large images.

A 7000x7000 image is ~147 MB as RGB pixels and several times that through conversion and
resizing; eight decoded at once took the process from ~1 GB to 1.7 GB, and glibc kept it
(freed heap pages stay mapped, in one arena per decoding thread). So:

- at most ``max_large_decodes`` images of more than ``large_image_pixels`` decode at once
  (the others wait in their preprocessing thread; small images never wait);
- when the last large decode of a burst ends, ``malloc_trim`` hands the freed pages back;
- allocations of ``MMAP_THRESHOLD`` and more (bodies, pixel buffers, Pillow's 16 MB blocks)
  are mmapped, so freeing them unmaps them. glibc's default threshold starts at 128 KiB but
  rises to the largest block freed (up to 32 MiB), after which such buffers come from arenas
  that keep them; fixing it keeps the tensors of a batch (< 1 MiB per image) on the heap.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


@cache
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return None


MMAP_THRESHOLD = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)


def fix_mmap_threshold(size: int = MMAP_THRESHOLD) -> None:
    """Make glibc mmap every allocation of ``size`` bytes or more (no dynamic threshold)."""
    libc = _libc()
    if libc is not None and not libc.mallopt(_M_MMAP_THRESHOLD, size):
        log.warning("mallopt(M_MMAP_THRESHOLD) refused")


def malloc_trim() -> None:
    """Return free heap pages of every malloc arena to the OS (glibc; elsewhere a no-op)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class LargeDecodeGate:
    """``gate(pixels)``: the ``model.preprocess`` gate bounding concurrent large decodes."""

    def __init__(self, large_image_pixels: int, max_large_decodes: int) -> None:
        self.large_image_pixels = large_image_pixels
        self._slots = threading.BoundedSemaphore(max_large_decodes)
        self._lock = threading.Lock()
        self._active = 0  # large decodes holding or waiting for a slot

    def __call__(self, pixels: int) -> AbstractContextManager[object]:
        if pixels <= self.large_image_pixels:
            return contextlib.nullcontext()
        return self._large()

    @contextlib.contextmanager
    def _large(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            with self._slots:
                yield
        finally:
            with self._lock:
                self._active -= 1
                last = self._active == 0
            if last:  # the burst is over: give its memory back
                malloc_trim()
