"""Keeping the process small and its pauses short after a listing is applied.

A full listing leaves tens of thousands of long-lived objects (models, rendered chunks) that every full
garbage collection would scan, a pause of hundreds of milliseconds at fleet scale: they are frozen out of
the collector's scans (reference counting still frees them when replaced; none of them form cycles). The
listing's parsed JSON was a transient peak of tens of megabytes that glibc keeps for reuse once freed, so
the resident size would stay at the peak: `malloc_trim` hands the free pages back. It exists in glibc
only; elsewhere that step does nothing.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_size_t,)
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


_trim = _malloc_trim()


def settle_after_listing() -> None:
    """Freeze the long-lived state out of the collector's scans and give free heap pages back."""
    gc.freeze()
    if _trim is not None:
        _trim(0)
