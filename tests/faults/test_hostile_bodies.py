"""Matrix rows of hostile bodies: one object of a listing that cannot be decoded as sent (nested a thousand
deep, an integer of 5,000 digits, invalid UTF-8 in its name), and a stream event nested a thousand deep. The
listings are the simulator's own with the hostile item spliced in, served by a scripted response. Only the
hostile object (or field) is dropped and counted; every other object keeps its series, the source stays up,
and the loops go on."""

from __future__ import annotations

import time

import pytest

from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import API_KEY, API_SECRET, RECOVERY_DEADLINE, SOURCES, Rig, State, rig

DEPTH = 1000
BOMB = b"[" * DEPTH + b"]" * DEPTH
HUGE = b"1" * 5000
STREAM_BOMB = b"[" * 10_000 + b"]" * 10_000
"""A stream event nested far deeper than any recursive decoder's stack."""


def hostile_environment(row: str) -> tuple[bytes, str | None]:
    """The spliced-in environment, and the name it must appear under (None: dropped whole)."""
    if row == "item-nesting-bomb":
        return b'{"name":"hostile","tier":"development","extra":' + BOMB + b"}", None
    if row == "item-huge-integer":
        return (
            b'{"name":"hostile","tier":"development","status":{"agent_connected":true,'
            b'"agent":{"roundtrip_duration":' + HUGE + b"}}}",
            "hostile",
        )
    return b'{"name":"hostile-\xff\xfe","tier":"development"}', "hostile-\ufffd\ufffd"


def hostile_agent(row: str) -> tuple[bytes, str | None]:
    if row == "item-nesting-bomb":
        return b'{"name":"hostile","spec":{"tools":' + BOMB + b"}}", None
    if row == "item-huge-integer":
        return b'{"name":"hostile","spec":{"model":"m","extra":' + HUGE + b"}}", "hostile"
    return b'{"name":"hostile-\xff\xfe","spec":{"model":"m"}}', "hostile-\ufffd\ufffd"


def lenses_listing(running: Rig, item: bytes) -> bytes:
    listing = running.sim.world.environment_list_bytes()
    assert listing.endswith(b"]}")
    return listing[:-2] + b"," + item + b"]}"


async def confluent_first_page(running: Rig, item: bytes) -> bytes:
    world = running.sim.world
    path = (
        f"/sql/v1/organizations/{world.organization_id}/environments/"
        f"{world.confluent_environment_ids[0]}/agents"
    )
    response = await running.http.get(
        running.sim.url + path, params={"page_size": "2"}, auth=(API_KEY, API_SECRET)
    )
    response.raise_for_status()
    assert b'"data":[' in response.content
    return response.content.replace(b'"data":[', b'"data":[' + item + b",", 1)


async def current(running: Rig) -> State:
    """Both sources up with the series of the world (the stream is off in the listing rows)."""
    _, state = await running.until(
        lambda s: all(s.up.get(x) == 1 and s.names(x) == running.world_names(x) for x in SOURCES),
        deadline=15,
        what="both sources up with current data",
    )
    return state


def invalid(state: State, source: str) -> float:
    return sum(
        s.value
        for s in state.samples
        if s.name == "lenses_hq_exporter_invalid_objects_total" and s.labels["source"] == source
    )


@pytest.mark.parametrize("row", ["item-nesting-bomb", "item-huge-integer", "item-invalid-utf8"])
async def test_one_undecodable_object_leaves_the_rest_of_the_listing(
    reliability: Collector, row: str
) -> None:
    async with rig(lenses={"sse": False}) as running:
        baseline = await current(running)
        before = {source: invalid(baseline, source) for source in SOURCES}
        environment, environment_name = hostile_environment(row)
        agent, agent_name = hostile_agent(row)
        faults = running.sim.faults
        faults.script(
            200,
            api="lenses",
            path="/v1/environments",
            body=lenses_listing(running, environment),
            content_type="application/json",
            count=None,
        )
        faults.script(
            200,
            api="confluent",
            page=1,
            body=await confluent_first_page(running, agent),
            content_type="application/json",
            count=None,
        )
        expected = {"lenses": environment_name, "confluent": agent_name}
        started = time.time()

        def applied(state: State) -> bool:
            return all(
                state.last_success.get(source, 0) > started
                and state.up.get(source) == 1
                and (
                    invalid(state, source) > before[source]
                    if expected[source] is None
                    else expected[source] in state.names(source)
                )
                for source in SOURCES
            )

        shown, state = await running.until(
            applied, deadline=RECOVERY_DEADLINE + 1, what="the listing applied without the hostile part"
        )
        outcomes: dict[str, str] = {}
        for source in SOURCES:
            others = running.world_names(source)
            assert others <= state.names(source), f"{source}: other objects lost their series"
            if expected[source] is None:
                assert state.names(source) == others
                outcomes[source] = "the hostile object dropped and counted in invalid_objects_total"
            else:
                assert invalid(state, source) == before[source], f"{source}: the object was dropped"
                outcomes[source] = f"the hostile object kept as {expected[source]!r}"
        if row == "item-huge-integer":
            roundtrip = [
                labels
                for name, labels, _ in state.data["lenses"]
                if name == "lenses_environment_agent_roundtrip_seconds"
                and dict(labels)["environment"] == "hostile"
            ]
            assert not roundtrip, "the 5,000-digit field was exported"
            outcomes["lenses"] += ", its 5,000-digit field dropped"

        faults.scripts.clear()
        recovered, _ = await running.until(
            lambda s: all(s.names(source) == running.world_names(source) for source in SOURCES),
            deadline=RECOVERY_DEADLINE + 1,
            what="the hostile object gone with its body",
        )
        for source in SOURCES:
            reliability.record(
                Outcome(
                    row,
                    source,
                    f"{seconds(shown)} (listing applied)",
                    seconds(recovered),
                    "up 1",
                    outcomes[source] + "; other objects unchanged",
                )
            )


async def test_a_stream_event_nested_ten_thousand_deep_is_dropped_and_both_loops_go_on(
    reliability: Collector,
) -> None:
    async with rig() as running:
        await running.healthy()
        start = await running.state()
        before = start.events.get("invalid", 0)
        running.sim.faults.sse_inject(b"event: environment_updated\ndata: " + STREAM_BOMB + b"\n\n")
        shown, _ = await running.until(
            lambda s: s.events.get("invalid", 0) > before,
            deadline=RECOVERY_DEADLINE,
            what="the event counted invalid",
        )
        # The stream still applies what comes next: a deletion reaches /metrics by the stream alone.
        world = running.sim.world
        gone = sorted(running.world_names("lenses"))[0]
        world.delete_environment(gone)
        applied, state = await running.until(
            lambda s: gone not in s.names("lenses") and s.sse_connected == 1,
            deadline=RECOVERY_DEADLINE,
            what="the next event applied",
        )
        assert state.up["lenses"] == 1
        # And the listing loop goes on beside it.
        await running.until(
            lambda s: s.last_success["lenses"] > start.last_success["lenses"] and s.up["lenses"] == 1,
            deadline=RECOVERY_DEADLINE,
            what="a listing after the event",
        )
        reliability.record(
            Outcome(
                "sse-nesting-bomb",
                "lenses",
                f"{seconds(shown)} (counted `invalid`)",
                f"{seconds(applied)} (next event applied)",
                "up 1; stream connected",
                "kept; the event dropped",
            )
        )
