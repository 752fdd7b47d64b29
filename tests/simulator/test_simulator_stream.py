"""The simulated Lenses HQ live stream: snapshot on connect, updates and deletions, ids, retry, keepalives,
Last-Event-ID, and that a standard SSE client reads it."""

from __future__ import annotations

import json

import httpx
from httpx_sse import aconnect_sse

from tests.simulator.simulator_fixtures import LENSES_AUTH, STREAM_PATH, running, stream
from tests.support import eventually


async def test_connect_sends_retry_once_and_a_snapshot_of_the_whole_list() -> None:
    async with running(environments=8) as (simulator, client), stream(client) as reader:
        snapshot = await reader.next_event()
        assert snapshot.event == "snapshot"
        assert snapshot.retry == 5000
        listed = (await client.get("/api/v1/environments", headers=LENSES_AUTH)).json()
        assert json.loads(snapshot.data) == listed
        assert reader.response.headers["Content-Type"] == "text/event-stream"
        assert reader.response.headers["X-Request-Id"]
        name = next(iter(simulator.world.environments))
        simulator.world.set_tier(name, "production")
        update = await reader.next_event()
        assert update.retry is None
        assert bytes(reader.raw).count(b"retry:") == 1


async def test_changes_arrive_as_updated_and_deleted_events_with_increasing_ids() -> None:
    async with running() as (simulator, client), stream(client, prefix="") as reader:
        world = simulator.world
        snapshot = await reader.next_event()
        first, second = list(world.environments)[:2]

        world.set_tier(first, "staging")
        tiered = await reader.next_event()
        assert tiered.event == "environment_updated"
        assert json.loads(tiered.data) == world.environment(first)
        assert json.loads(tiered.data)["tier"] == "staging"

        world.disconnect_agent(first)
        disconnected = json.loads((await reader.next_event()).data)
        assert disconnected["name"] == first and disconnected["status"] == {"agent_connected": False}

        world.connect_agent(first)
        reconnected = json.loads((await reader.next_event()).data)
        assert reconnected["status"]["agent_connected"] is True and "agent" in reconnected["status"]

        world.create_environment("brand-new", tier="production")
        created = await reader.next_event()
        assert created.event == "environment_updated" and json.loads(created.data)["name"] == "brand-new"

        patched = await client.patch(
            f"/v1/environments/{second}", json={"display_name": "X"}, headers=LENSES_AUTH
        )
        assert patched.status_code == 200
        assert json.loads((await reader.next_event()).data)["display_name"] == "X"

        world.delete_environment(second)
        deleted = await reader.next_event()
        assert deleted.event == "environment_deleted"
        assert json.loads(deleted.data) == {"name": second}

        await client.delete("/api/v1/environments/brand-new", headers=LENSES_AUTH)
        deleted_over_http = await reader.next_event()
        assert json.loads(deleted_over_http.data) == {"name": "brand-new"}

        ids = [
            int(event_id)
            for event_id in (snapshot.id, tiered.id, created.id, deleted.id, deleted_over_http.id)
        ]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_keepalive_comments_flow_while_nothing_changes() -> None:
    async with running(keepalive_interval=0.05) as (_, client), stream(client) as reader:
        await reader.next_event()
        assert await reader.next_comment() == "keepalive"
        assert await reader.next_comment() == "keepalive"


async def test_a_reconnect_with_last_event_id_gets_a_fresh_snapshot() -> None:
    async with running() as (simulator, client):
        async with stream(client) as reader:
            first = await reader.next_event()
        name = next(iter(simulator.world.environments))
        simulator.world.delete_environment(name)
        async with stream(client, headers={"Last-Event-ID": first.id or ""}) as reader:
            again = await reader.next_event()
        assert again.event == "snapshot"
        assert int(again.id or 0) > int(first.id or 0)
        assert name not in {item["name"] for item in json.loads(again.data)["items"]}


async def test_every_subscriber_gets_the_same_event() -> None:
    async with running() as (simulator, client), stream(client) as one, stream(client) as two:
        await one.next_event()
        await two.next_event()
        simulator.world.set_tier(next(iter(simulator.world.environments)), "production")
        first, second = await one.next_event(), await two.next_event()
        assert (first.id, first.event, first.data) == (second.id, second.event, second.data)
        assert len(simulator.hub.subscribers) == 2


async def test_httpx_sse_reads_the_stream() -> None:
    async with (
        running() as (simulator, client),
        aconnect_sse(client, "GET", "/api" + STREAM_PATH, headers=LENSES_AUTH) as source,
    ):
        events = source.aiter_sse()
        snapshot = await anext(events)
        assert snapshot.event == "snapshot" and snapshot.retry == 5000
        assert len(json.loads(snapshot.data)["items"]) == len(simulator.world.environments)
        simulator.world.delete_environment(next(iter(simulator.world.environments)))
        deleted = await anext(events)
        assert deleted.event == "environment_deleted" and int(deleted.id) > int(snapshot.id)


async def test_generated_updates_flow_at_the_configured_rate() -> None:
    async with running(updates_per_second=200.0) as (simulator, client), stream(client) as reader:
        await reader.next_event()
        names = set()
        for _ in range(20):
            event = await reader.next_event()
            assert event.event == "environment_updated"
            names.add(json.loads(event.data)["name"])
        assert len(names) > 1

        async def published() -> bool:
            return simulator.hub.published >= 40

        await eventually(published, what="generated updates")


async def test_open_streams_end_when_the_simulator_stops() -> None:
    async with (
        running() as (simulator, client),
        client.stream("GET", "/api" + STREAM_PATH, headers=LENSES_AUTH) as response,
    ):
        chunks = response.aiter_bytes()
        await anext(chunks)
        await simulator.stop()
        try:
            rest = b"".join([chunk async for chunk in chunks])
        except httpx.HTTPError:
            rest = b""
        assert b"event:" not in rest
