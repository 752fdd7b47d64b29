"""Matrix rows of background loops meeting input that used to end them: a listing, an error body, a
Kafka-connection count and a live-stream event nested thousands deep, and a live-stream `id:` that cannot be
sent back as a header. Every loop must go on (restarted when it must be), `up` must not say 1 while nothing
is watched, and each loop is working again within one poll interval of the upstream healing."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import (
    DETECTION_DEADLINE,
    RECOVERY_DEADLINE,
    STREAM_DEADLINE,
    Rig,
    State,
    rig,
)
from tests.faults.test_stream import connected_environment, topics

DEPTH = 10_000
NESTED_ARRAY = b"[" * DEPTH + b"]" * DEPTH
"""A JSON document nested far deeper than any recursive decoder's stack (20 KB)."""
NESTED_OBJECT = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
"""The same as an object: what an error body's request id is looked for in."""


async def changed_by_the_stream_or_listing(running: Rig, value: int, deadline: float) -> float:
    """Change one environment upstream and wait until the exporter shows it; seconds it took."""
    name = connected_environment(running)
    running.sim.world.set_metrics(name, "data", num_topics=value)
    took, _ = await running.until(
        lambda s: topics(s, name) == value and s.up.get("lenses") == 1,
        deadline=deadline,
        what=f"num_topics {value} shown with up 1",
    )
    return took


async def until_lenses_down(running: Rig, started: float) -> float:
    await running.until(lambda s: s.up.get("lenses") == 0, deadline=DETECTION_DEADLINE, what="lenses up 0")
    return time.monotonic() - started


async def until_lenses_current(running: Rig, since: float) -> float:
    """Seconds from `since` until the Lenses source is up with every environment current."""
    await running.until(
        lambda s: s.up.get("lenses") == 1 and s.names("lenses") == running.world_names("lenses"),
        deadline=RECOVERY_DEADLINE,
        what="lenses up with current data",
    )
    return time.monotonic() - since


async def test_nesting_bomb_listing(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        bomb = running.sim.faults.script(
            200, api="lenses", path="/v1/environments", body=NESTED_ARRAY, count=None
        )
        started = time.monotonic()
        detected = await until_lenses_down(running, started)
        running.sim.faults.scripts.remove(bomb)
        healed = time.monotonic()
        recovered = await until_lenses_current(running, healed)
        await changed_by_the_stream_or_listing(running, 4242, RECOVERY_DEADLINE)
        await running.until(lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="stream open")
        reliability.record(
            Outcome(
                "nesting-bomb-listing",
                "lenses",
                seconds(detected),
                seconds(recovered),
                "up 0; listing loop restarted, stream kept",
                "kept",
            )
        )


async def test_nesting_bomb_error_body(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        bomb = running.sim.faults.script(
            500,
            api="lenses",
            path="/v1/environments",
            body=NESTED_OBJECT,
            content_type="application/json",
            headers={"X-Request-Id": ""},  # so the request id is looked for in the body
            count=None,
        )
        started = time.monotonic()
        detected = await until_lenses_down(running, started)
        running.sim.faults.scripts.remove(bomb)
        healed = time.monotonic()
        recovered = await until_lenses_current(running, healed)
        await changed_by_the_stream_or_listing(running, 4343, RECOVERY_DEADLINE)
        reliability.record(
            Outcome(
                "nesting-bomb-error-body",
                "lenses",
                seconds(detected),
                seconds(recovered),
                "up 0; listing loop restarted, stream kept",
                "kept",
            )
        )


async def test_nesting_bomb_kafka_connections(reliability: Collector) -> None:
    async with rig(lenses={"kafka_connections": True}) as running:
        await running.healthy()
        bomb = running.sim.faults.script(
            200, api="lenses", path="/v1/environments/*/kafka-connections", body=NESTED_OBJECT, count=None
        )
        before = await running.state()
        # Long enough for a few listings to meet the bomb.
        await running.until(
            lambda s: s.up.get("lenses") == 0 or s.last_success["lenses"] > before.last_success["lenses"] + 2,
            deadline=DETECTION_DEADLINE,
            what="the listing loop meeting the bomb",
        )
        running.sim.faults.scripts.remove(bomb)
        healed = time.monotonic()
        stalled = await running.state()
        recovered, _ = await running.until(
            lambda s: (
                s.up.get("lenses") == 1
                and s.last_success["lenses"] > max(stalled.last_success["lenses"], time.time() - 60)
            ),
            deadline=RECOVERY_DEADLINE,
            what="a listing succeeding after the bomb",
        )
        reliability.record(
            Outcome(
                "nesting-bomb-connections",
                "lenses",
                "-",
                seconds(time.monotonic() - healed),
                f"up {stalled.up['lenses']:.0f}; listing loop kept polling",
                "kept",
            )
        )
        del recovered


async def test_stream_id_not_ascii(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        before = await running.state()
        # Legal in an event stream, but no HTTP header can carry it back as `Last-Event-ID`.
        assert running.sim.faults.sse_inject("id: événement-ünïcode\nevent: ping\ndata: x\n\n".encode())
        running.sim.faults.sse_cut_next_event()
        started = time.monotonic()
        took = await changed_by_the_stream_or_listing(running, 4545, RECOVERY_DEADLINE)
        _, state = await running.until(
            lambda s: (
                s.sse_connected == 1
                and s.up.get("lenses") == 1
                and s.last_success["lenses"] > before.last_success["lenses"]
            ),
            deadline=STREAM_DEADLINE,
            what="stream open again and listings going on",
        )
        dropped = [
            sample.value
            for sample in state.samples
            if sample.name == "lenses_hq_exporter_invalid_fields_total"
            and sample.labels.get("field") == "last_event_id"
        ]
        assert dropped == [1.0], dropped
        reliability.record(
            Outcome(
                "sse-id-not-ascii",
                "lenses",
                "-",
                seconds(took),
                "id dropped and counted (invalid_fields last_event_id); stream reconnected without it",
                "current",
            )
        )
        del started


async def test_nesting_bomb_confluent_page(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        bomb = running.sim.faults.script(200, api="confluent", page=2, body=NESTED_ARRAY, count=None)
        started = time.monotonic()
        await running.until(
            lambda s: s.up.get("confluent") == 0, deadline=DETECTION_DEADLINE, what="confluent up 0"
        )
        detected = time.monotonic() - started
        running.sim.faults.scripts.remove(bomb)
        healed = time.monotonic()
        await running.until(
            lambda s: s.up.get("confluent") == 1 and s.names("confluent") == running.world_names("confluent"),
            deadline=RECOVERY_DEADLINE,
            what="confluent up with current data",
        )
        reliability.record(
            Outcome(
                "nesting-bomb-listing",
                "confluent",
                seconds(detected) + " (page 2)",
                seconds(time.monotonic() - healed),
                "up 0; the target's loop went on",
                "kept",
            )
        )


async def test_stream_event_that_is_not_json(reliability: Collector) -> None:
    async with rig() as running:
        await running.healthy()
        before = await running.state()
        before_reconnects = sse_reconnects(before)
        with capture_logs() as logs:
            assert running.sim.faults.sse_inject(b'event: environment_updated\ndata: {"name": "cut\n\n')
            await running.until(
                lambda s: s.events.get("invalid", 0) > before.events.get("invalid", 0),
                deadline=DETECTION_DEADLINE,
                what="the event counted invalid",
            )
            took = await changed_by_the_stream_or_listing(running, 4646, RECOVERY_DEADLINE)
            reconnects = sse_reconnects(await running.state())
        assert [entry["event"] for entry in logs if entry["event"].startswith("loop_")] == []
        dropped = [entry for entry in logs if entry["event"] == "stream_event_dropped"]
        assert len(dropped) == 1 and dropped[0]["stream_event"] == "environment_updated", dropped
        assert reconnects == before_reconnects  # the stream stayed open
        reliability.record(
            Outcome(
                "sse-invalid-json",
                "lenses",
                "-",
                seconds(took) + " (the next change shown)",
                "event counted `invalid` and logged once; the stream stayed open",
                "current",
            )
        )


def sse_reconnects(state: State) -> float:
    return sum(
        sample.value for sample in state.samples if sample.name == "lenses_hq_exporter_sse_reconnects_total"
    )
