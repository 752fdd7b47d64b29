"""Background compaction is not held up by a scraper that stops reading: the pause for a scrape being
written is bounded."""

from __future__ import annotations

import asyncio
import random

from exporter.exposition.compaction import MAX_PAUSE
from exporter.simulator.server import Simulator
from tests.exposition.store_helpers import count
from tests.lenses.lenses_fixtures import lenses_settings, running_exporter, simulator_options
from tests.support import eventually

ENVIRONMENTS = 5000
"""Enough for an exposition (about 18 MB) larger than what loopback socket buffers hold."""


async def test_a_client_that_stops_reading_does_not_stop_compaction() -> None:
    assert MAX_PAUSE < 5
    async with (
        Simulator(simulator_options(environments=ENVIRONMENTS)) as simulator,
        running_exporter(lenses_settings(simulator)) as exporter,
    ):
        if True:
            store = exporter.exporter.store

            async def listed() -> bool:
                return count(store, exporter.exporter.sources[0].group, "hq") == ENVIRONMENTS  # type: ignore[attr-defined]

            await eventually(listed, timeout=60, what="every environment listed")
            await eventually(lambda: asyncio.sleep(0, store.pending() == 0), timeout=60, what="compacted")
            reader, writer = await asyncio.open_connection("127.0.0.1", exporter.exporter.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
            await writer.drain()
            try:
                await reader.readexactly(1)  # the scrape has begun; nothing more is read from now on
                rng = random.Random(3)
                for name in sorted(simulator.world.environments)[::10]:
                    simulator.world.drift(name, rng)
                await eventually(lambda: asyncio.sleep(0, store.pending() > 0), what="changes applied")
                await eventually(
                    lambda: asyncio.sleep(0, store.pending() == 0),
                    timeout=30,
                    what="changes compacted while the stalled scrape is still being written",
                )
                assert store.scrapes == 1, "the stalled scrape ended: the exposition fit in the buffers"
            finally:
                writer.close()
