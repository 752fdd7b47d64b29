"""Keeping the store's pieces up to date between scrapes, so that a scrape finds only the last few
milliseconds of changes to join and serves everything else as it is.

Two loops on the event loop, a short slice at a time: joining changed pieces' text soon after each change,
and deflating them (with their checksums), most of the work, which waits while a scrape is being written so
the two do not compete, but never longer than MAX_PAUSE at a stretch: a scraper that stops reading keeps
its scrape "being written" for as long as it likes, and must not leave everyone else's gzip uncompressed.
(A worker thread for deflating was measured: it holds its own malloc arena, and the fragmentation cost
more memory than the event loop time it saved.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from exporter.exposition.store import Store

DELAY = 0.001
"""After a change, how long to let more changes gather before joining them."""
JOIN_SLICE = 16
"""Changed pieces joined between two turns of the event loop (well under a millisecond)."""
DEFLATE_SLICE = 32 * 1024
"""Bytes of text deflated between two turns of the event loop (about a sixth of a millisecond), so a scrape
that arrives meanwhile waits little: pieces range from a few to tens of kilobytes."""
MAX_PAUSE = 0.5
"""Longest stretch deflating waits for scrapes being written; then it goes on, a slice at a time, until
no scrape is being written for a moment."""


class Compactor:
    """Runs the store's upkeep in the background; `run` until cancelled."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._changed = asyncio.Event()
        self._joined = asyncio.Event()
        self._paused_since: float | None = None  # when scrapes being written began to pause deflating
        store.on_change = self._changed.set

    async def run(self) -> None:
        """Join and deflate changed pieces until cancelled; if either loop fails, the other is cancelled too,
        so that a restart (see `exporter.supervisor`) does not leave a second copy running."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._join_forever())
            group.create_task(self._deflate_forever())

    async def _join_forever(self) -> None:
        store = self.store
        while True:
            await self._changed.wait()
            await asyncio.sleep(DELAY)
            self._changed.clear()
            while store.join_changed(JOIN_SLICE):  # noqa: ASYNC110 - a turn of the loop between slices
                await asyncio.sleep(0)
            self._joined.set()

    async def _deflate_forever(self) -> None:
        store = self.store
        while True:
            await self._joined.wait()
            self._joined.clear()
            # A scrape being written pauses this; its end counts as a change, which wakes both loops again.
            while await self._may_run() and store.deflate(DEFLATE_SLICE):  # noqa: ASYNC110 - as above
                await asyncio.sleep(0)
            # Checksums combined and deflated pieces joined per family now, not by the next gzip scrape.
            for _ in store.prepare_gzip():
                if not await self._may_run():
                    break
                await asyncio.sleep(0)

    async def _may_run(self) -> bool:
        """Whether deflating may go on now: no scrape is being written, or they have paused it for
        MAX_PAUSE already (then it waits out the rest of that first, woken early by a scrape's end)."""
        if not self.store.scrapes:
            self._paused_since = None
            return True
        now = time.monotonic()
        if self._paused_since is None:
            self._paused_since = now
        remaining = self._paused_since + MAX_PAUSE - now
        if remaining <= 0:
            return True
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as the
        # event is set, and a loop that cannot be cancelled hangs the shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await self._joined.wait()
        return not self.store.scrapes or time.monotonic() >= self._paused_since + MAX_PAUSE
