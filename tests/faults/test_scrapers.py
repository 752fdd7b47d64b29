"""Matrix row: fifty concurrent scrapers while the upstream flaps (5xx bursts, stream drops, bodies cut,
all on and off every few hundred milliseconds). Every scrape is answered and parses, the exporter's
sources keep running, memory stays bounded, and once the flapping stops both sources recover within one
poll interval with current data."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import RECOVERY_DEADLINE, RETRY_WAIT, SOURCES, STREAM_DEADLINE, Rig, rig, rss_bytes
from tests.support import parse_samples

SCRAPERS = 50
FLAP_SECONDS = 6.0
MEMORY_BOUND = 100 * 2**20

FLAPS = (
    {"error_rate": 1.0},
    {},
    {"body_fault": "truncated"},
    {},
    {"sse_drop_interval": 0.2, "error_rate": 0.5},
    {},
)


async def flap(running: Rig, until: float) -> int:
    """Switch faults on and off until the deadline; returns how many switches."""
    switches = 0
    while time.monotonic() < until:
        faults = running.sim.faults
        faults.clear()
        faults.set(**FLAPS[switches % len(FLAPS)])
        switches += 1
        await asyncio.sleep(0.3)
    running.sim.faults.clear()
    return switches


async def scraper(url: str, until: float, seen_up: dict[str, set[float]]) -> int:
    """One scraper on its own connection: scrape, parse, repeat until the deadline."""
    count = 0
    async with httpx.AsyncClient(timeout=30) as http:
        while time.monotonic() < until:
            response = await http.get(url)
            assert response.status_code == 200
            for sample in parse_samples(response.text):
                if sample.name == "lenses_hq_exporter_up":
                    seen_up[sample.labels["source"]].add(sample.value)
            count += 1
    return count


async def test_fifty_scrapers_while_the_upstream_flaps(reliability: Collector) -> None:
    async with rig() as running:
        before = await running.healthy()
        rss = rss_bytes()
        until = time.monotonic() + FLAP_SECONDS
        seen_up: dict[str, set[float]] = {source: set() for source in SOURCES}
        sampler_peak = [rss]

        async def sample_memory() -> None:
            while time.monotonic() < until:
                sampler_peak[0] = max(sampler_peak[0], rss_bytes())
                await asyncio.sleep(0.1)

        results = await asyncio.gather(
            flap(running, until),
            sample_memory(),
            *(scraper(running.url + "/metrics", until, seen_up) for _ in range(SCRAPERS)),
        )
        switches, scrapes = results[0], sum(results[2:])
        cleared = time.monotonic()
        assert all(not task.done() for task in running.exporter._tasks), "a source stopped"
        recovered, _ = await running.until(
            lambda s: all(s.up.get(x) == 1 and s.names(x) == running.world_names(x) for x in SOURCES),
            deadline=RECOVERY_DEADLINE + RETRY_WAIT,
            what="both sources up with current data after the flapping",
        )
        await running.until(lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="the stream open")
        stream_back = time.monotonic() - cleared
        grown = sampler_peak[0] - rss
        after = await running.state()
        for source in SOURCES:
            assert after.reasons(source, before), f"{source} never met a fault"
        assert grown < MEMORY_BOUND, f"memory grew {grown / 2**20:.0f} MiB"
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "scrapers-while-flapping",
                    source,
                    f"up seen as {sorted(int(v) for v in seen_up[source])} while flapping; failures "
                    f"counted: {', '.join(sorted(after.reasons(source, before)))}",
                    seconds(recovered)
                    + (f" (stream open after {seconds(stream_back)})" if source == "lenses" else ""),
                    f"{SCRAPERS} scrapers, {scrapes} scrapes in {FLAP_SECONDS:g} s, all answered and parsed; "
                    f"{switches} fault switches; memory peak +{grown / 2**20:.1f} MiB",
                    "current after recovery",
                )
            )
