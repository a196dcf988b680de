"""Hand memory the process no longer uses back to the operating system, between the heavy stages.

numpy's large temporaries come from glibc malloc. Once a freed block was big,
glibc raises its mmap threshold, so later blocks of that size come from the
heap, and a heap with one live block near its top cannot shrink: after the
counting stages of a 10 M-event build the process kept ≈ 1 GB it had freed
(measured: 837 → 629 MB resident at 2 M events after a trim). `malloc_trim`
returns every free page of the heap. Cheap (milliseconds) and a no-op off
glibc; numbers never change.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def give_back() -> None:
    """malloc_trim(0) where glibc provides it."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
