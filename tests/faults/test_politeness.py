"""Matrix rows of an upstream that would make the exporter impolite or unsafe: a stream that asks to be
reconnected at once and closes after every event, Kafka-connection names that are path segments (`.`,
`..`), a Confluent redirect to another port of the configured host, and paging that loops."""

from __future__ import annotations

import re
import time

from aiohttp import web

from exporter.lenses.stream import RECONNECT_FLOOR
from exporter.lenses.sync import RELIST_MIN_GAP
from tests.faults.hostile import (
    agents_body,
    good_agents,
    listing_of,
    redirect_to,
    stream_closing_after_one_event,
    watched,
)
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.test_transport import until
from tests.support import free_port

RECONNECTS = 8


async def test_stream_asking_for_instant_reconnects_after_every_event(reliability: Collector) -> None:
    async with watched(lenses={"sse": True, "poll_interval": 30.0}) as watching:
        hostile = watching.hostile
        hostile.stream = stream_closing_after_one_event
        await until(watching, lambda s: s.up.get("lenses") == 1 and hostile.requests["stream"] >= 2, 10, "up")
        listings, opens, started = hostile.requests["lenses"], hostile.requests["stream"], time.monotonic()
        await until(
            watching,
            lambda s: hostile.requests["stream"] >= opens + RECONNECTS,
            30,
            f"{RECONNECTS} reconnects",
        )
        took = time.monotonic() - started
        relists = hostile.requests["lenses"] - listings
        # Each reconnect waits at least the floor, and the re-lists they ask for at least the minimum gap.
        assert took >= (RECONNECTS - 1) * RECONNECT_FLOOR, took
        assert relists <= took / RELIST_MIN_GAP + 1, (relists, took)
        state = await watching.state()
        assert state.up["lenses"] == 1
        reliability.record(
            Outcome(
                "sse-retry-1-close",
                "lenses",
                "-",
                "-",
                f"{RECONNECTS} reconnects took {seconds(took)} (floor {RECONNECT_FLOOR:g}s), "
                f"{relists} re-lists (at most one per {RELIST_MIN_GAP:g}s); up 1",
                "current",
            )
        )


CONNECTIONS_PATH = re.compile(r"/api/v1/environments/([^/]+)/kafka-connections")


async def test_environment_names_that_are_path_segments(reliability: Collector) -> None:
    async with watched(lenses={"kafka_connections": True}) as watching:
        hostile = watching.hostile
        hostile.lenses = listing_of([".", "..", "ok"])
        first = len(hostile.paths)
        await until(
            watching,
            lambda s: s.up.get("lenses") == 1 and s.names("lenses") == {".", "..", "ok"},
            10,
            "three environments",
        )
        await until(watching, lambda s: sum("kafka" in p for p in hostile.paths[first:]) >= 3, 10, "counts")
        asked = [path for path in hostile.paths[first:] if "kafka" in path]
        segments = set()
        for path in asked:
            matched = CONNECTIONS_PATH.fullmatch(path)
            assert matched is not None, f"{path} is not an environment's kafka-connections"
            segments.add(matched.group(1))
        assert segments == {"%2E", "%2E%2E", "ok"}, segments
        reliability.record(
            Outcome(
                "names-dot-dot",
                "lenses",
                "-",
                "-",
                "`.` and `..` asked for as /environments/%2E/… and /environments/%2E%2E/…; no other path",
                "current",
            )
        )


async def test_confluent_redirect_to_another_port_of_the_configured_host(reliability: Collector) -> None:
    seen: list[str | None] = []

    async def other_service(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=agents_body(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", other_service)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with watched() as watching:
            await until(watching, lambda s: s.up.get("confluent") == 1, 10, "confluent up")
            before = await watching.state()
            watching.hostile.agents = redirect_to(f"http://127.0.0.1:{port}")
            await until(
                watching,
                lambda s: "agents:redirect_refused" in s.reasons("confluent", since=before),
                10,
                "the redirect refused",
            )
            assert all(authorization is None for authorization in seen), seen
            state = await watching.state()
            watching.hostile.agents = good_agents
            reliability.record(
                Outcome(
                    "confluent-redirect-port",
                    "confluent",
                    "-",
                    "-",
                    f"up {state.up['confluent']:.0f} (redirect_refused); the other port never saw the "
                    "credentials",
                    "kept",
                )
            )
    finally:
        await runner.cleanup()
