"""Matrix rows of the Lenses live stream: 404, dropped mid-event, silent, garbage lines and unknown events,
an oversize event, a flood of 10,000 events a second. Polling keeps `up` 1 throughout; the stream's state
(`lenses_hq_exporter_sse_connected`, the landing page) says what the stream is doing; updates keep
arriving or are re-read on reconnect."""

from __future__ import annotations

import asyncio
import time

import httpx

from exporter.lenses import metrics as lenses_metrics
from exporter.lenses.model import decode_environment
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import (
    GRACE,
    POLL_INTERVAL,
    RECOVERY_DEADLINE,
    Rig,
    State,
    reduce,
    rig,
    rss_bytes,
)
from tests.support import parse_samples

MEMORY_BOUND = 100 * 2**20
"""What a row may add to the process's resident memory (simulator and exporter share the process)."""


def topics(state: State, environment: str) -> float | None:
    for name, labels, value in state.data["lenses"]:
        if name == "lenses_environment_topics" and dict(labels).get("environment") == environment:
            return float(value)
    return None


def connected_environment(running: Rig) -> str:
    world = running.sim.world
    return next(name for name in sorted(world.environments) if world.connected(name))


def expected_lenses(running: Rig) -> frozenset[tuple[str, tuple[tuple[str, str], ...], str]]:
    """The Lenses series the world's environments render to now (the exporter's own decoding and
    rendering, fed the world directly: what a fresh listing would show)."""
    group = lenses_metrics.build_group()
    parts = []
    for name in sorted(running.world_names("lenses")):
        environment = decode_environment(running.sim.world.environment(name))
        rendered = group.render(environment, lenses_metrics.common_values(environment, "hq"))
        parts += [f.header() + chunk for f, chunk in zip(group.families, rendered, strict=True) if chunk]
    return reduce(parse_samples(b"".join(parts).decode())).data["lenses"]


def up_throughout(states: list[State]) -> bool:
    return all(state.up.get("lenses") == 1 for state in states)


async def test_stream_404(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        name = connected_environment(running)
        running.sim.faults.sse_enabled = False
        running.sim.faults.sse_cut_next_event()
        started = time.monotonic()
        running.sim.world.set_metrics(name, "data", num_topics=404)
        page = await running.until_landing(
            lambda p: p["lenses"].stream == "unavailable", deadline=5, what="stream unavailable"
        )
        detected = time.monotonic() - started
        state = await running.state()
        assert state.sse_connected == 0 and state.up["lenses"] == 1
        # Polling alone carries the change the cut event held.
        polled, state = await running.until(
            lambda s: topics(s, name) == 404 and s.up["lenses"] == 1,
            deadline=RECOVERY_DEADLINE,
            what="the change by polling",
        )
        running.sim.faults.sse_enabled = True
        cleared = time.monotonic()
        await running.until(
            lambda s: s.sse_connected == 1,
            deadline=POLL_INTERVAL + GRACE,  # sse_unavailable_probe_interval is one poll interval here
            what="the stream found again",
        )
        recovered = time.monotonic() - cleared
        reliability.record(
            Outcome(
                "sse-404",
                "lenses",
                seconds(detected),
                seconds(recovered) + " (next probe of the stream)",
                f"up 1; stream {page['lenses'].stream}, sse_connected 0; polling carried a change "
                f"{seconds(polled)} after the stream went",
                "current by polling",
            )
        )


async def test_stream_dropped_mid_event(reliability: Collector) -> None:
    async with rig() as running:
        before = await running.healthy()
        reconnects = await reconnect_count(running)
        name = connected_environment(running)
        running.sim.faults.sse_cut_next_event()
        running.sim.world.set_metrics(name, "data", num_topics=4242)
        took, state = await running.until(
            lambda s: topics(s, name) == 4242 and s.sse_connected == 1,
            deadline=RECOVERY_DEADLINE,
            what="the cut update re-read after reconnecting",
        )
        assert await reconnect_count(running) == reconnects + 1
        assert state.events.get("invalid", 0) == before.events.get("invalid", 0), "half an event was applied"
        reliability.record(
            Outcome(
                "sse-cut-mid-event",
                "lenses",
                "reconnected at once (1 reconnect)",
                seconds(took) + " (the update, from the snapshot after reconnecting)",
                "up 1; stream reconnecting briefly, nothing half-applied",
                "current",
            )
        )


async def test_stream_silent(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        running.sim.faults.sse_stall = True
        started = time.monotonic()
        idle = 2.0  # the rig's sse_idle_timeout
        page = await running.until_landing(
            lambda p: p["lenses"].stream == "reconnecting", deadline=idle + 5, what="the idle timeout"
        )
        detected = time.monotonic() - started
        state = await running.state()
        assert state.sse_connected == 0 and state.up["lenses"] == 1
        assert state.failures.get(("lenses", "stream", "timeout"), 0) >= 1
        running.sim.faults.sse_stall = False
        cleared = time.monotonic()
        name = connected_environment(running)
        await running.until(lambda s: s.sse_connected == 1, deadline=idle + 10, what="the stream back")
        reconnected = time.monotonic() - cleared
        running.sim.world.set_metrics(name, "apps", num_consumers=777)
        await running.until(
            lambda s: any(
                n == "lenses_environment_consumers" and dict(lb)["environment"] == name and float(v) == 777
                for n, lb, v in s.data["lenses"]
            ),
            deadline=2,
            what="updates flowing again",
        )
        reliability.record(
            Outcome(
                "sse-silent",
                "lenses",
                seconds(detected) + f" (idle timeout {idle:g} s)",
                seconds(reconnected),
                f"up 1; stream {page['lenses'].stream}, sse_connected 0, failures stream:timeout",
                "kept, then current",
            )
        )


async def test_stream_garbage_and_unknown_events(reliability: Collector) -> None:
    async with rig() as running:
        before = await running.healthy()
        reconnects = await reconnect_count(running)
        running.sim.faults.sse_garbage = True
        running.sim.faults.sse_unknown_events = True
        name = connected_environment(running)
        running.sim.world.set_metrics(name, "data", num_topics=777)
        took, state = await running.until(
            lambda s: topics(s, name) == 777, deadline=2, what="the update through the garbage"
        )
        _, state = await running.until(
            lambda s: s.events.get("unknown", 0) > before.events.get("unknown", 0),
            deadline=2,
            what="the unknown event counted",
        )
        assert state.sse_connected == 1 and await reconnect_count(running) == reconnects
        assert state.up["lenses"] == 1
        reliability.record(
            Outcome(
                "sse-garbage",
                "lenses",
                "nothing to detect: garbage lines ignored",
                "-",
                f"up 1; stream connected, no reconnect; unknown events counted "
                f"({state.events.get('unknown', 0) - before.events.get('unknown', 0):g})",
                f"updated {seconds(took)} after the change",
            )
        )


async def test_stream_oversize_event(reliability: Collector) -> None:
    async with rig(lenses={"sse_max_event_bytes": 64 * 1024}) as running:
        before = await running.healthy()
        reconnects = await reconnect_count(running)
        rss = rss_bytes()
        assert running.sim.faults.sse_oversize_event(4 * 1024 * 1024) == 1
        took, state = await running.until(
            lambda s: s.events.get("oversize", 0) == before.events.get("oversize", 0) + 1,
            deadline=5,
            what="the oversize event dropped and counted",
        )
        grown = rss_bytes() - rss
        assert grown < MEMORY_BOUND, f"memory grew {grown / 2**20:.0f} MiB for one dropped event"
        name = connected_environment(running)
        running.sim.world.set_metrics(name, "data", num_topics=8080)
        await running.until(lambda s: topics(s, name) == 8080, deadline=2, what="the next event applied")
        assert await reconnect_count(running) == reconnects
        assert "oversize" not in {dict(labels)["environment"] for _, labels, _ in state.data["lenses"]}
        assert state.up["lenses"] == 1 and state.sse_connected == 1
        reliability.record(
            Outcome(
                "sse-oversize",
                "lenses",
                seconds(took) + " (a 4 MiB event against a 64 KiB cap)",
                "-",
                "up 1; stream connected, no reconnect; counted as event `oversize`; "
                f"memory grew {grown / 2**20:.1f} MiB",
                "the oversize environment not exported; the next event applied",
            )
        )


FLOOD_RATE = 10_000
FLOOD_SECONDS = 3.0


async def test_stream_flood(reliability: Collector) -> None:
    async with rig() as running:
        before = await running.healthy()
        reconnects = await reconnect_count(running)
        rss = rss_bytes()
        peak = rss
        scrapes = 0
        running.sim.faults.sse_flood_per_second = FLOOD_RATE
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() - started < FLOOD_SECONDS:
                response = await http.get(running.url + "/metrics")
                assert response.status_code == 200
                parse_samples(response.text)
                scrapes += 1
                peak = max(peak, rss_bytes())
                await asyncio.sleep(0.1)
        running.sim.faults.sse_flood_per_second = 0
        flooded = time.monotonic() - started
        state = await running.state()
        received = state.events.get("environment_updated", 0) - before.events.get("environment_updated", 0)
        cleared = time.monotonic()
        # Events sent faster than the exporter reads them wait in the socket and the simulator's queue;
        # the exporter works through them and ends on the world's state.
        took, state = await running.until(
            lambda s: s.data["lenses"] == expected_lenses(running),
            deadline=RECOVERY_DEADLINE + 3 * FLOOD_SECONDS,
            what="the series converged on the world",
        )
        backlog = state.events.get("environment_updated", 0) - before.events.get("environment_updated", 0)
        assert peak - rss < MEMORY_BOUND, f"memory grew {(peak - rss) / 2**20:.0f} MiB"
        assert state.up["lenses"] == 1 and state.sse_connected == 1
        assert received > 0
        del cleared
        reliability.record(
            Outcome(
                "sse-flood",
                "lenses",
                f"{received:.0f} events read during {flooded:.1f} s of flood ({received / flooded:.0f}/s), "
                f"{backlog:.0f} in all; {await reconnect_count(running) - reconnects:.0f} reconnects",
                seconds(took) + " after the flood stopped: backlog read, series equal to the world's",
                f"up 1; {scrapes} scrapes served and parsed during the flood; memory peak "
                f"+{(peak - rss) / 2**20:.1f} MiB",
                "converged",
            )
        )


async def reconnect_count(running: Rig) -> float:
    state = await running.state()
    return sum(s.value for s in state.samples if s.name == "lenses_hq_exporter_sse_reconnects_total")
