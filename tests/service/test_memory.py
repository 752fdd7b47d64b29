"""After a listing: the long-lived state leaves the collector's scans, and a transient peak leaves RSS."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from exporter import memory


def resident_megabytes() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_settling_freezes_what_is_alive() -> None:
    alive = [[index] for index in range(1000)]  # lists: objects the collector tracks
    frozen_before = gc.get_freeze_count()
    memory.settle_after_listing()
    assert gc.get_freeze_count() >= frozen_before + len(alive)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim and /proc are Linux's")
def test_a_freed_transient_peak_is_given_back() -> None:
    peak = [bytes(1000) for _ in range(100_000)]  # ~100 MB in malloc'd blocks, like a parsed listing
    survivor = [bytes(1000)]  # allocated last: the heap's top stays in use, so free() alone keeps the rest
    before = resident_megabytes()
    del peak
    kept = resident_megabytes()
    memory.settle_after_listing()
    after = resident_megabytes()
    assert kept > before - 20, "the allocator already gave the memory back by itself"
    assert after < kept - 60
    assert survivor


def test_collection_is_paused_while_listings_run_and_resumes_after_the_last() -> None:
    assert gc.isenabled()
    with memory.collection_paused():
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), memory.collection_paused():  # a second listing, failing
            raise RuntimeError("listing failed")
        assert not gc.isenabled()  # the first still runs
    assert gc.isenabled()


def test_a_pause_does_not_turn_on_a_collector_that_was_off() -> None:
    gc.disable()
    try:
        with memory.collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
