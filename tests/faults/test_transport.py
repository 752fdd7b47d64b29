"""Matrix rows of hostile transports: a body sent one byte a second, a gzip listing that inflates to a
gigabyte, a gzip live stream of a gigabyte of blank lines, and large listings cut off again and again. A
request ends within its total deadline, memory stays bounded, the event loop keeps answering, and nothing
of a failed request stays in memory."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import httpx

from tests.faults.hostile import (
    Watched,
    cut_after,
    good_agents,
    good_listing,
    gzip_of_blank,
    gzipped,
    rate_limited,
    trickle,
    watched,
)
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import GRACE, SOURCES, State, rss_bytes

DEADLINE = 3.0
"""The request deadline the hostile rig configures (timeout 1 s)."""
POLL = 1.0


async def until(watching: Watched, check, deadline: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while True:
        state = await watching.state()
        if check(state):
            return time.monotonic() - started
        if time.monotonic() - started > deadline:
            raise AssertionError(f"not within {deadline:.1f}s: {what}; up={state.up}")
        await asyncio.sleep(0.05)


async def test_body_one_byte_a_second(reliability: Collector) -> None:
    async with watched() as watching:
        await until(watching, lambda s: all(s.up.get(x) == 1 for x in SOURCES), 10, "both up")
        before = await watching.state()
        hostile = watching.hostile
        hostile.lenses = trickle(b'{"items": []}' * 100, interval=0.5)
        hostile.agents = trickle(b'{"data": []}' * 100, interval=0.5)
        # A byte every half second never trips the 1 s read timeout. The next poll starts within a poll
        # interval, and fails once its deadline has passed.
        detected = await until(
            watching,
            lambda s: all(s.up.get(x) == 0 for x in SOURCES),
            POLL + DEADLINE + GRACE,
            "both sources up 0 (timeout)",
        )
        state = await watching.state()
        reasons = {source: state.reasons(source, since=before) for source in SOURCES}
        assert "environments:timeout" in reasons["lenses"], reasons
        assert "agents:timeout" in reasons["confluent"], reasons
        hostile.lenses, hostile.agents = good_listing, good_agents
        recovered = await until(
            watching, lambda s: all(s.up.get(x) == 1 for x in SOURCES), POLL + DEADLINE + GRACE, "up again"
        )
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "body-one-byte-a-second",
                    source,
                    seconds(detected) + f" (request_deadline {DEADLINE:g}s)",
                    seconds(recovered),
                    f"up 0 ({', '.join(sorted(reasons[source]))}), not retried",
                    "kept",
                )
            )


BOMB_SIZE = 256 * 1024 * 1024
"""Blank lines behind about 256 KB of gzip (a gigabyte behaves the same, only longer to build)."""


@functools.cache
def blank_lines_gzip(prefix: bytes) -> bytes:
    return gzip_of_blank(BOMB_SIZE, prefix)


async def healthz_while(watching: Watched, done: Callable[[State], bool], deadline: float) -> int:
    """Ask /healthz over and over, each answer due within a second (what a liveness probe allows), until
    `done` holds on /metrics; returns how many answers came."""
    answers = 0
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=1.0) as probe:
        while True:
            response = await probe.get(watching.url + "/healthz")
            assert response.status_code == 200
            answers += 1
            if done(await watching.state()):
                return answers
            assert time.monotonic() - started < deadline, "not done within the deadline"
            await asyncio.sleep(0.05)


async def test_gzip_listing_that_inflates_to_a_quarter_gigabyte(reliability: Collector) -> None:
    async with watched() as watching:
        await until(watching, lambda s: all(s.up.get(x) == 1 for x in SOURCES), 10, "both up")
        body = blank_lines_gzip(b'{"items": [')
        start = rss_bytes()
        before = await watching.state()
        watching.hostile.lenses = gzipped(body, "application/json")
        watching.hostile.agents = gzipped(body, "application/json")
        started = time.monotonic()
        answers = await healthz_while(
            watching, lambda s: all(s.up.get(x) == 0 for x in SOURCES), POLL + DEADLINE + GRACE
        )
        detected = time.monotonic() - started
        state = await watching.state()
        peak = rss_bytes() - start
        reasons = {source: state.reasons(source, since=before) for source in SOURCES}
        assert "environments:too_large" in reasons["lenses"], reasons
        assert "agents:too_large" in reasons["confluent"], reasons
        assert peak < 100 * 2**20, peak
        watching.hostile.lenses, watching.hostile.agents = good_listing, good_agents
        recovered = await until(
            watching, lambda s: all(s.up.get(x) == 1 for x in SOURCES), POLL + GRACE + 2.5, "up again"
        )
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "body-gzip-bomb",
                    source,
                    seconds(detected),
                    seconds(recovered),
                    f"up 0 ({', '.join(sorted(reasons[source]))}); /healthz answered {answers} times; "
                    f"memory +{peak / 2**20:.0f} MB",
                    "kept",
                )
            )


async def test_gzip_stream_of_a_quarter_gigabyte_of_blank_lines(reliability: Collector) -> None:
    async with watched(lenses={"sse": True}) as watching:
        await until(watching, lambda s: s.up.get("lenses") == 1, 10, "lenses up")
        before = await watching.state()
        watching.hostile.stream = gzipped(blank_lines_gzip(b"retry: 100\n\n"), "text/event-stream")
        started = time.monotonic()
        answers = await healthz_while(
            watching,
            lambda s: "stream:too_large" in s.reasons("lenses", since=before),
            POLL + DEADLINE + GRACE,
        )
        detected = time.monotonic() - started
        # The stream keeps being retried (and given up) while /healthz and polling carry on.
        answers += await healthz_while(
            watching, lambda s: watching.hostile.requests["stream"] >= 3, 20 * (POLL + GRACE)
        )
        state = await watching.state()
        assert state.up["lenses"] == 1
        reliability.record(
            Outcome(
                "sse-gzip-bomb",
                "lenses",
                seconds(detected) + " (stream given up)",
                "-",
                f"stream:too_large; /healthz answered {answers} times within 1 s each; polling kept up 1",
                "current by polling",
            )
        )


async def test_large_listings_cut_off_again_and_again_leave_nothing_behind(reliability: Collector) -> None:
    size = 300 * 2**20
    async with watched(lenses={"max_body_bytes": 512 * 2**20}) as watching:
        await until(watching, lambda s: s.up.get("lenses") == 1, 10, "lenses up")
        cut = cut_after(size, declared=400 * 2**20)  # holds its 300 MB from here to the end
        await asyncio.sleep(0)
        start = rss_bytes()
        before = await watching.state()
        watching.hostile.lenses = cut
        peak = start

        def enough(state: State) -> bool:
            nonlocal peak
            peak = max(peak, rss_bytes())
            failed = sum(
                count - before.failures.get(key, 0)
                for key, count in state.failures.items()
                if key[:2] == ("lenses", "environments")
            )
            return failed >= 8

        await until(watching, enough, 120, "eight failed listings")
        watching.hostile.lenses = good_listing
        healed = time.monotonic()
        await until(watching, lambda s: s.up.get("lenses") == 1, POLL + GRACE + 2.5, "lenses up again")
        recovered = time.monotonic() - healed
        # One more listing applied after the recovery, so every failure is behind a settled success.
        last = (await watching.state()).last_success["lenses"]
        await until(watching, lambda s: s.last_success["lenses"] > last, POLL + GRACE, "one more listing")
        after = rss_bytes()
        mb = 2**20
        assert after - start < 100 * mb, f"start {start / mb:.0f} MB, after recovery {after / mb:.0f} MB"
        reliability.record(
            Outcome(
                "large-failures-memory",
                "lenses",
                "-",
                seconds(recovered),
                f"8 listings of 300 MB cut off; resident {start / mb:.0f} MB at the start, peak "
                f"{peak / mb:.0f} MB, {after / mb:.0f} MB after recovery",
                "kept",
            )
        )


async def test_a_sync_waiting_out_a_long_retry_after_is_not_up(reliability: Collector) -> None:
    async with watched() as watching:
        await until(watching, lambda s: all(s.up.get(x) == 1 for x in SOURCES), 10, "both up")
        watching.hostile.lenses = watching.hostile.agents = rate_limited(300)
        bound = 3 * POLL + DEADLINE  # exporter.health.stale_after
        started = time.monotonic()
        detected = await until(
            watching, lambda s: all(s.up.get(x) == 0 for x in SOURCES), bound + GRACE, "both up 0 (stale)"
        )
        landing = (await watching.http.get(watching.url + "/")).text
        assert "stale: no successful sync" in landing
        watching.hostile.lenses, watching.hostile.agents = good_listing, good_agents
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "retry-after-300",
                    source,
                    seconds(detected) + f" (up 0 once the last success is {bound:g} s old)",
                    "-",
                    "up 0 (stale) while the sync waits out Retry-After",
                    "kept",
                )
            )
        del started
