"""Bringing the store's pieces up to date between scrapes, with work that follows what changed since the last
pass rather than each update.

An update only marks the pieces it changes; a scrape takes what is marked as it is when it begins.
Deflating (with the checksums) is the expensive part, so it runs in passes, each over every piece changed
since the last one, timed by the gzip scrapes seen:
- a scraper on a schedule (its last intervals agree, as Prometheus's do): one pass shortly before its next
  scrape is expected, so a Prometheus scraping every 15 s sees thousands of updates coalesced into one pass;
- gzip scrapes at no cadence that can be timed (people, scripts, several scrapers): a pass as soon as changes
  come, so whenever the next scrape comes little waits, at the cost of deflating as often as things change;
- no gzip scraper lately: a pass once changes have gathered for IDLE_DELAY.
Pieces changed after a pass go as stored blocks until the next one.

A pass runs on the event loop a short slice at a time and waits while a scrape is being written, so the two
do not compete, but never longer than MAX_PAUSE at a stretch: a scraper that stops reading keeps its scrape
"being written" for as long as it likes, and must not leave everyone else's gzip uncompressed. (A worker
thread for deflating was measured: it holds its own malloc arena, and the fragmentation cost more memory
than the event loop time it saved.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence

from exporter.exposition.store import Store

IDLE_DELAY = 5.0
"""With no gzip scraper lately, how long changes gather before a pass deflates them."""
FOLLOW_DELAY = 0.005
"""With gzip scrapes at no cadence, how long changes gather before a pass (an update or two)."""
FOLLOW_FOR = 60.0
"""How long after its last scrape a gzip scraper with no cadence is still followed that way, at most (else
for two of its last intervals)."""
CADENCE_TOLERANCE = 0.05
"""Two intervals between gzip scrapes that differ by less than this share of the later one make a cadence
(Prometheus keeps its schedule to the millisecond)."""
GAP = 3.0
"""An interval this many times the next one is a gap before a scraper (re)started, not a cadence broken."""
MIN_LEAD = 0.25
"""How long before a gzip scrape is expected a pass starts, at least; twice the pass's expected duration is
added, so the pass ends before the scrape."""
MAX_INTERVAL = 600.0
"""Gzip scrapes further apart than this do not count as a regular scraper."""
PIECE_SECONDS = 100e-6
"""What a pass is assumed to take per piece until passes have been measured (a piece of ten kilobytes
deflated at about a hundred megabytes a second)."""
MEASURED_PASS = 64
"""Passes over fewer pieces do not update the measured time per piece (their fixed costs would dominate)."""
WAKE_EVERY = 1.0
"""Longest sleep before the schedule is looked at again (a scrape may have changed it)."""
JOIN_SLICE = 16
"""Changed pieces joined between two turns of the event loop (well under a millisecond)."""
DEFLATE_SLICE = 32 * 1024
"""Bytes of text deflated between two turns of the event loop (about a sixth of a millisecond), so a scrape
that arrives meanwhile waits little: pieces range from a few to tens of kilobytes."""
CATCH_UP = 512
"""Pieces waiting beyond which a pass no longer waits for scrapes being written (about 5 MB of text)."""
MAX_PAUSE = 0.5
"""Longest stretch a pass waits for scrapes being written; then it goes on, a slice at a time, until
no scrape is being written for a moment."""


def cadence(gzip_scrapes: Sequence[float]) -> float | None:
    """The interval of a gzip scraper on a schedule: the last interval, when it is under MAX_INTERVAL and
    agrees with the one before it (or is the only one known, or the one before it was a gap: the scraper
    has just started); else None."""
    intervals = [later - earlier for earlier, later in itertools.pairwise(gzip_scrapes)]
    if not intervals or not 0 < intervals[-1] <= MAX_INTERVAL:
        return None
    last = intervals[-1]
    if (
        len(intervals) >= 2
        and abs(last - intervals[-2]) > CADENCE_TOLERANCE * last
        and intervals[-2] < GAP * last
    ):
        return None
    return last


def next_pass(now: float, changed_at: float, gzip_scrapes: Sequence[float], pass_seconds: float) -> float:
    """When the next pass, expected to take `pass_seconds`, should start for changes waiting since
    `changed_at`: ahead of the next gzip scrape of a scraper on a schedule (still expected: late by less
    than an interval, or than IDLE_DELAY for a scraper faster than that); FOLLOW_DELAY after the changes
    began while gzip scrapes come at no cadence (for two of their last intervals); else at once when the
    last gzip scrape came while the changes waited (it sent them uncompressed, and its scraper may come
    back soon); else IDLE_DELAY after the changes began."""
    interval = cadence(gzip_scrapes)
    if interval is not None:
        last = gzip_scrapes[-1]
        if now < last + interval + max(interval, IDLE_DELAY):
            return last + interval - MIN_LEAD - 2 * pass_seconds
    if len(gzip_scrapes) >= 2:
        last_interval = gzip_scrapes[-1] - gzip_scrapes[-2]
        if now - gzip_scrapes[-1] < min(FOLLOW_FOR, 2 * last_interval):
            return changed_at + FOLLOW_DELAY
    if gzip_scrapes and gzip_scrapes[-1] >= changed_at:
        return gzip_scrapes[-1]
    return changed_at + IDLE_DELAY


class Compactor:
    """Runs the store's upkeep in the background; `run` until cancelled."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = asyncio.Event()
        self._paused_since: float | None = None  # when scrapes being written began to pause a pass
        self.piece_seconds = PIECE_SECONDS
        """How long a pass takes per piece, from the passes so far (slices and pauses included)."""
        store.on_change = self._changed.set

    async def run(self) -> None:
        """Bring changed pieces up to date, a pass at a time, until cancelled."""
        store = self.store
        while True:
            if not store.pending():
                self._changed.clear()
                await self._changed.wait()
            changed_at = time.monotonic()
            while True:
                now = time.monotonic()
                # The pass to come is estimated from the pieces waiting now (they only grow until it starts).
                estimate = store.pending() * self.piece_seconds
                wait = next_pass(now, changed_at, store.gzip_scrapes, estimate) - now
                if wait <= 0:
                    break
                await asyncio.sleep(min(wait, WAKE_EVERY))
            pieces, started = store.pending(), time.monotonic()
            await self._pass()
            if pieces >= MEASURED_PASS:
                seconds = (time.monotonic() - started) / pieces
                self.piece_seconds = (self.piece_seconds + seconds) / 2

    async def _pass(self) -> None:
        """Join, deflate and checksum every piece waiting, then prepare what a gzip scrape combines."""
        store = self.store
        await join_waiting(store)
        while store.deflate(DEFLATE_SLICE):
            await self._scrapes_written()
        # Checksums combined and segments joined per family now, not by the next gzip scrape.
        for _ in store.prepare_gzip():
            await self._scrapes_written()

    async def _scrapes_written(self) -> None:
        """A turn of the event loop, and then, while a scrape is being written, a wait until none is or
        until they have paused the pass for MAX_PAUSE (woken early by a scrape's end, which counts as a
        change). A backlog of more than CATCH_UP pieces does not wait: every gzip scrape meanwhile would
        send it uncompressed."""
        await asyncio.sleep(0)
        while self.store.scrapes and self.store.pending() <= CATCH_UP:
            now = time.monotonic()
            if self._paused_since is None:
                self._paused_since = now
            remaining = self._paused_since + MAX_PAUSE - now
            if remaining <= 0:
                return
            self._changed.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as
            # the event is set, and a loop that cannot be cancelled hangs the shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        self._paused_since = None


async def join_waiting(store: Store) -> None:
    """Join every piece waiting for it, JOIN_SLICE at a time with a turn of the loop between. Called after
    a whole listing too: its tens of thousands of per-object texts then go together, before the memory is
    settled, instead of lingering until the next pass among the long-lived objects allocated beside them
    (which keeps the allocator from giving their pages back)."""
    while store.join_changed(JOIN_SLICE):  # noqa: ASYNC110 - a turn of the loop between slices
        await asyncio.sleep(0)
