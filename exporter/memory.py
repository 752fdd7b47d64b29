"""Keeping the process small and its pauses short after a listing is applied.

A full listing leaves tens of thousands of long-lived objects (models, rendered chunks) that every full
garbage collection would scan, a pause of hundreds of milliseconds at fleet scale: they are frozen out of
the collector's scans (reference counting still frees them when replaced; none of them form cycles). The
listing's parsed JSON was a transient peak of tens of megabytes that glibc keeps for reuse once freed, so
the resident size would stay at the peak: `malloc_trim` hands the free pages back. It exists in glibc
only; elsewhere that step does nothing. What a failed request left in reference cycles is collected before
the freeze, so a failure never pins its body for good.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Callable, Iterator


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


_failed_since_settled = False


def note_failure() -> None:
    """A request or loop failed: its exception, traceback and the frames holding its body may form a cycle
    that only a collection frees (the retry policy keeps the exception that refers back to it). Collected
    before the next freeze, which would otherwise make it immortal."""
    global _failed_since_settled
    _failed_since_settled = True


def settle_after_listing() -> None:
    """Collect what failures since the last listing left behind (only then: a full collection of a fleet's
    state costs a pause), freeze the long-lived state out of the collector's scans and give free heap pages
    back."""
    global _failed_since_settled
    if _failed_since_settled:
        _failed_since_settled = False
        gc.collect()
    gc.freeze()
    if _trim is not None:
        _trim(0)


_pauses = 0
_enabled_before_pause = True


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic garbage collection while a listing is decoded and applied: its tens of thousands of new
    objects would otherwise set off several full collections, each scanning the whole state built so far,
    only for `settle_after_listing` to freeze that state out of the scans anyway. Nests; what the listing
    leaves in cycles is collected once collection resumes."""
    global _pauses, _enabled_before_pause
    if _pauses == 0:
        _enabled_before_pause = gc.isenabled()
        gc.disable()
    _pauses += 1
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0 and _enabled_before_pause:
            gc.enable()
