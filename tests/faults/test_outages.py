"""Matrix rows where a source goes down: upstream down at start and mid-run, 5xx bursts, 429 with and
without headers, responses slower than the timeout, truncated, non-JSON and wrongly typed bodies. Each row
asserts `up` 0 with the right reason while the fault lasts, `last_success` frozen, every data series at
its last good value, and recovery within one poll interval of the fault clearing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from exporter.simulator.faults import ScriptedResponse
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import (
    DETECTION_DEADLINE,
    RECOVERY_DEADLINE,
    RETRY_WAIT,
    SOURCES,
    STREAM_DEADLINE,
    Rig,
    State,
    rig,
)

CONFLUENT_LISTING = "/sql/v1/organizations/*/environments/*/agents"


@dataclass
class Seen:
    """What one source showed while down."""

    detected: float
    state: State
    stream: str
    reasons: set[str]
    landing_error: str


async def watch_down(
    running: Rig, source: str, baseline: State, started: float, on_down: Callable[[str], None] | None
) -> Seen:
    """Wait for the source's `up` 0; check the data and `last_success` stayed; clear its fault at once if
    the row can (so it is waiting for its next poll when the fault is gone)."""
    _, state = await running.until(
        lambda s: s.up.get(source) == 0, deadline=DETECTION_DEADLINE, what=f"{source} up 0"
    )
    detected = time.monotonic() - started
    if on_down is not None:
        on_down(source)
    assert state.data[source] == baseline.data[source], f"{source}: data changed while the upstream failed"
    page = await running.landing()
    target = page[source]
    assert target.state == "down" and target.last_error, page
    return Seen(detected, state, page["lenses"].stream, state.reasons(source, baseline), target.last_error)


async def watch_recovery(running: Rig, source: str, seen: Seen, cleared: float, bound: float) -> float:
    """Wait for `up` 1 with current data; returns seconds since the fault cleared."""
    frozen = seen.state.last_success[source]

    def recovered(state: State) -> bool:
        return state.up.get(source) == 1 and state.names(source) == running.world_names(source)

    await running.until(recovered, deadline=bound + 5, what=f"{source} recovered")
    took = time.monotonic() - cleared
    assert took <= bound, f"{source} recovered {took:.2f}s after the fault cleared (bound {bound:.2f}s)"
    after = await running.state()
    assert after.last_success[source] > frozen
    return took


async def run_outage(
    running: Rig,
    reliability: Collector,
    row: str,
    *,
    apply: Callable[[], None],
    clear: Callable[[], None] | None = None,
    clear_source: Callable[[str], None] | None = None,
    slack: float = 0.0,
    reasons: dict[str, str],
) -> dict[str, Seen]:
    """The common shape of an outage row: healthy, fault on, both sources down with the expected reason
    (`endpoint:reason`), fault off, both recovered within the bound. A fault cleared per source is cleared
    the moment that source shows it; one cleared for both at once may catch a source between two retries,
    whose wait (`slack`) comes on top of the bound."""
    baseline = await running.healthy()
    started = time.monotonic()
    cleared: dict[str, float] = {}

    def on_down(source: str) -> None:
        if clear_source is not None:
            clear_source(source)
            cleared[source] = time.monotonic()

    apply()
    seen = dict(
        zip(
            SOURCES,
            await asyncio.gather(*(watch_down(running, s, baseline, started, on_down) for s in SOURCES)),
            strict=True,
        )
    )
    # Still the last good values (and no success recorded) just before the fault clears.
    before_clear = await running.state()
    for source in SOURCES:
        if source not in cleared:
            assert before_clear.data[source] == baseline.data[source]
            assert before_clear.last_success[source] == seen[source].state.last_success[source]
    bound = RECOVERY_DEADLINE
    if clear is not None:
        clear()
        now = time.monotonic()
        cleared = {source: now for source in SOURCES}
        bound += slack
    took = await asyncio.gather(*(watch_recovery(running, s, seen[s], cleared[s], bound) for s in SOURCES))
    stream_back, _ = await running.until(
        lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="stream open again"
    )
    for source, recovered in zip(SOURCES, took, strict=True):
        found = seen[source]
        assert reasons[source] in found.reasons, (source, found.reasons)
        stream = f"; stream {found.stream}" if source == "lenses" else ""
        reliability.record(
            Outcome(
                row=row,
                source=source,
                detected=seconds(found.detected),
                recovered=seconds(recovered)
                + (f" (stream open {seconds(stream_back)} later)" if source == "lenses" else ""),
                during=f'up 0 ({", ".join(sorted(found.reasons))}){stream}; "{found.landing_error}"',
                data="kept",
            )
        )
    return seen


class PerSource:
    """A persistent scripted answer per API, put on by `apply` and taken away one source at a time."""

    def __init__(self, running: Rig, make: Callable[[str], ScriptedResponse]) -> None:
        self.running = running
        self.make = make
        self.scripts: dict[str, ScriptedResponse] = {}

    def apply(self) -> None:
        self.scripts = {source: self.make(source) for source in SOURCES}

    def clear(self, source: str) -> None:
        self.running.sim.faults.scripts.remove(self.scripts[source])


# ----- rows --------------------------------------------------------------------------------------------


async def test_upstream_down_at_start(reliability: Collector) -> None:
    async with rig(start_simulator=False) as running:
        started = time.monotonic()
        page = await running.until_landing(
            lambda p: all(p[s].state == "down" for s in SOURCES), deadline=DETECTION_DEADLINE, what="down"
        )
        detected = time.monotonic() - started
        state = await running.state()
        assert all(state.up[s] == 0 and state.last_success[s] == 0 for s in SOURCES)
        assert state.data == {"lenses": frozenset(), "confluent": frozenset()}
        assert (await running.http.get(running.url + "/readyz")).status_code == 200
        assert page["lenses"].stream == "reconnecting" and state.sse_connected == 0
        await running.start_simulator()
        cleared = time.monotonic()
        recovered, _ = await running.until(
            lambda s: all(s.up.get(x) == 1 and s.names(x) == running.world_names(x) for x in SOURCES),
            deadline=RECOVERY_DEADLINE + RETRY_WAIT,
            what="both sources up with current data",
        )
        await running.until(lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="the stream open")
        stream_back = time.monotonic() - cleared
        for source in SOURCES:
            reasons = state.reasons(source, since=_empty_state(state))
            assert any(reason.endswith(":connect") for reason in reasons), reasons
            reliability.record(
                Outcome(
                    "down-at-start",
                    source,
                    seconds(detected) + " (first sync failed)",
                    seconds(recovered)
                    + (f" (stream open after {seconds(stream_back)})" if source == "lenses" else ""),
                    f'up 0 ({", ".join(sorted(reasons))}), ready; "{page[source].last_error}"'
                    + ("; stream reconnecting" if source == "lenses" else ""),
                    "none yet",
                )
            )


def _empty_state(state: State) -> State:
    return State({}, {}, 0, {}, {}, {"lenses": frozenset(), "confluent": frozenset()}, [])


async def test_upstream_down_mid_run(reliability: Collector) -> None:
    async with rig() as running:
        baseline = await running.healthy()
        await running.stop_simulator()
        started = time.monotonic()
        await running.until(lambda s: s.sse_connected == 0, deadline=5, what="stream closed")
        seen = await asyncio.gather(*(watch_down(running, s, baseline, started, None) for s in SOURCES))
        await running.start_simulator()
        cleared = time.monotonic()
        bound = RECOVERY_DEADLINE + RETRY_WAIT
        took = await asyncio.gather(
            *(watch_recovery(running, s, x, cleared, bound) for s, x in zip(SOURCES, seen, strict=True))
        )
        stream_back, _ = await running.until(
            lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="stream open"
        )
        for source, found, recovered in zip(SOURCES, seen, took, strict=True):
            assert any(r.endswith((":connect", ":network")) for r in found.reasons), found.reasons
            reliability.record(
                Outcome(
                    "down-mid-run",
                    source,
                    seconds(found.detected),
                    seconds(recovered)
                    + (f" (stream open {seconds(stream_back)} after restart)" if source == "lenses" else ""),
                    f"up 0 ({', '.join(sorted(found.reasons))})"
                    + (f"; stream {found.stream}" if source == "lenses" else "")
                    + f'; "{found.landing_error}"',
                    "kept",
                )
            )


async def test_5xx_burst(reliability: Collector) -> None:
    async with rig() as running:
        fault = PerSource(running, lambda api: running.sim.faults.script(503, api=api, count=None))
        await run_outage(
            running,
            reliability,
            "5xx-burst",
            apply=fault.apply,
            clear_source=fault.clear,
            reasons={"lenses": "environments:http_5xx", "confluent": "agents:http_5xx"},
        )


@pytest.mark.parametrize(
    ("row", "headers"), [("429-retry-after", {"Retry-After": "1"}), ("429-no-headers", {})]
)
async def test_429(reliability: Collector, row: str, headers: dict[str, str]) -> None:
    async with rig() as running:
        fault = PerSource(
            running, lambda api: running.sim.faults.script(429, api=api, headers=headers, count=None)
        )
        await run_outage(
            running,
            reliability,
            row,
            apply=fault.apply,
            clear_source=fault.clear,
            reasons={"lenses": "environments:http_429", "confluent": "agents:http_429"},
        )


async def test_responses_slower_than_the_timeout(reliability: Collector) -> None:
    async with rig(lenses={"timeout": 0.5}, confluent={"timeout": 0.5}) as running:

        def apply() -> None:
            running.sim.faults.latency = 1.0

        def clear() -> None:
            running.sim.faults.latency = 0.0

        await run_outage(
            running,
            reliability,
            "slow-responses",
            apply=apply,
            clear=clear,
            slack=RETRY_WAIT,
            reasons={"lenses": "environments:timeout", "confluent": "agents:timeout"},
        )


@pytest.mark.parametrize(
    ("row", "fault", "reasons"),
    [
        ("body-truncated", "truncated", {"lenses": "environments:decode", "confluent": "agents:decode"}),
        ("body-not-json", "not_json", {"lenses": "environments:decode", "confluent": "agents:decode"}),
        (
            "body-wrong-content-type",
            "wrong_content_type",
            {"lenses": "environments:content_type", "confluent": "agents:content_type"},
        ),
    ],
)
async def test_broken_bodies(reliability: Collector, row: str, fault: str, reasons: dict[str, str]) -> None:
    async with rig() as running:

        def apply() -> None:
            running.sim.faults.body_fault = fault

        def clear() -> None:
            running.sim.faults.body_fault = None

        await run_outage(running, reliability, row, apply=apply, clear=clear, reasons=reasons)
