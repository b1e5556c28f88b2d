"""How a stage that handles tables of tens of millions of rows uses the C heap (glibc; on other
C libraries both functions leave the allocator as it is and hand back only Arrow's pool).

By default glibc serves a block of 128 KiB or more with its own mapping and unmaps it when it is
freed, and trims the heap's free top beyond 128 KiB: numpy's temporaries over a million values
(8 MB each) are then faulted in and zeroed by the kernel again and again, which costs more than
their arithmetic (datalog.quote: 29.6 ms per million values by default, 12.0 ms with blocks
kept, on this project's machine: `python benchmarks/heap.py`). `kept()` keeps freed blocks of up
to 32 MB on the heap while a stage runs; `release_freed_memory()` hands the free pages back."""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator

import pyarrow as pa

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # (glibc's mallopt parameters)
_DEFAULT = 128 * 1024  # glibc's default for both
_KEPT_MMAP = 32 * 1024 * 1024  # the largest mmap threshold glibc accepts on 64-bit systems
_KEPT_TRIM = 2**31 - 1  # (mallopt takes an int)
_lock = threading.Lock()
_depth = 0

try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.malloc_trim  # noqa: B018 (glibc only)
    _LIBC.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
except (OSError, AttributeError):
    _LIBC = None


def release_freed_memory() -> None:
    """Hand freed memory back to the system: the C heap's (glibc's malloc_trim; a million-row
    batch's columns are small enough to live on the heap) and Arrow's pool's (which holds the
    columns of a table read from feather). Without this the process keeps the pages of what it
    has freed while it allocates the new table beside them."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Within the block, freed blocks of up to 32 MB stay on the heap for the next allocation
    instead of going back to the system; on leaving it (the outermost one, when nested) glibc's
    defaults are set again and the free pages handed back (release_freed_memory)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1 and _LIBC is not None:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _KEPT_MMAP)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEPT_TRIM)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
            if last and _LIBC is not None:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _DEFAULT)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT)
        if last:
            release_freed_memory()
