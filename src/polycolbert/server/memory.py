"""Keep a long-running server's memory from creeping up: glibc malloc and many threads.

The server encodes and serialises in worker threads (the batcher, the thread pool). glibc gives threads
their own malloc arenas (up to 8 per core) and keeps memory freed inside an arena for reuse, so after
large requests (token states, vectors, JSON bodies) the process's RSS stays high, idle or not, and drifts
up as requests land in different arenas. The server therefore caps the arenas at two
(:func:`tune_malloc`) and hands freed memory back to the system after each response that encoded
(:func:`release_free_memory`, glibc's ``malloc_trim``, run after the response is sent). A fixed mmap
threshold would also keep RSS flat but maps and faults in every large tensor anew, at a clear cost in
throughput (``benchmarks/server_soak.py``; the numbers are in ``docs/benchmarks.md``).
Elsewhere than glibc both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


@cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl has neither)
        return None
    return libc


def tune_malloc() -> bool:
    """Cap malloc arenas (threads that allocate later share them); True when glibc took it."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS))


def release_free_memory() -> None:
    """Give the memory malloc holds free back to the system (a few milliseconds)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
