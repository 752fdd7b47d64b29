"""The simulator's fault switches: scripted responses, random failures, broken bodies, schema drift, paging
and redirect faults, stream faults, and the `/_admin/` endpoint."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.simulator.simulator_fixtures import (
    CONFLUENT_AUTH,
    LENSES_AUTH,
    STREAM_PATH,
    listing_path,
    running,
    stream,
)
from tests.support import eventually


async def test_a_scripted_429_hits_the_third_page_of_the_next_listing_once() -> None:
    async with running(agents=80) as (simulator, client):
        simulator.faults.script(429, api="confluent", page=3, headers={"Retry-After": "1"}, count=1)
        url: str | None = listing_path(simulator)
        statuses = []
        while url:
            response = await client.get(url, auth=CONFLUENT_AUTH)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "1"
                assert response.content == b""
                continue
            url = response.json()["metadata"].get("next")
        assert statuses == [200, 200, 429, 200, 200]
        assert simulator.faults.scripts == []


async def test_a_persistent_script_answers_until_cleared() -> None:
    async with running(agents=160) as (simulator, client):
        simulator.faults.script(500, api="confluent", page=7, count=None)
        url: str | None = listing_path(simulator)
        for _ in range(6):
            assert url
            url = (await client.get(url, auth=CONFLUENT_AUTH)).json()["metadata"].get("next")
        assert url
        for _ in range(3):
            failed = await client.get(url, auth=CONFLUENT_AUTH)
            assert failed.status_code == 500
            assert failed.json()["errors"][0]["status"] == "500"
        simulator.faults.clear()
        assert (await client.get(url, auth=CONFLUENT_AUTH)).status_code == 200


async def test_the_lenses_list_answers_503_three_times() -> None:
    async with running() as (simulator, client):
        simulator.faults.script(503, api="lenses", path="/v1/environments", count=3)
        other = await client.get(
            f"/api/v1/environments/{next(iter(simulator.world.environments))}", headers=LENSES_AUTH
        )
        assert other.status_code == 200
        statuses = [
            (await client.get("/api/v1/environments", headers=LENSES_AUTH)).status_code for _ in range(4)
        ]
        assert statuses == [503, 503, 503, 200]


async def test_a_scripted_body_and_content_type_are_sent_as_given() -> None:
    async with running() as (simulator, client):
        simulator.faults.script(200, api="lenses", path="/v1/environments", body='{"items": [', count=1)
        simulator.faults.script(404, api="lenses", path="/v1/environments/*/kafka-connections")
        truncated = await client.get("/v1/environments", headers=LENSES_AUTH)
        assert truncated.content == b'{"items": ['
        missing = await client.get("/v1/environments/anything/kafka-connections", headers=LENSES_AUTH)
        assert missing.json()["type"] == "not_found"
        assert missing.json()["request_id"] == missing.headers["X-Request-Id"]


@pytest.mark.parametrize("headers", [True, False])
async def test_random_429s_with_or_without_headers(headers: bool) -> None:
    async with running(rate_limited_rate=1.0, rate_limited_headers=headers) as (simulator, client):
        lenses = await client.get("/api/v1/environments", headers=LENSES_AUTH)
        confluent = await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)
        for response in (lenses, confluent):
            assert response.status_code == 429
            assert ("Retry-After" in response.headers) is headers
            assert ("X-RateLimit-Reset" in response.headers) is headers
        assert lenses.json()["request_id"]
        assert confluent.content == b""


async def test_random_server_errors_can_be_limited_to_one_api() -> None:
    async with running() as (simulator, client):
        simulator.faults.error_rate = 1.0
        simulator.faults.random_api = "confluent"
        assert (await client.get("/api/v1/environments", headers=LENSES_AUTH)).status_code == 200
        failed = await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)
        assert failed.status_code in (500, 503)
        assert failed.json()["errors"][0]["id"] == failed.headers["X-Request-Id"]
        # The reference's 500 example: id, status, code, title and detail.
        assert set(failed.json()["errors"][0]) == {"id", "status", "code", "title", "detail"}


@pytest.mark.parametrize("fault", ["truncated", "not_json", "wrong_content_type"])
async def test_broken_bodies(fault: str) -> None:
    async with running() as (simulator, client):
        simulator.faults.body_fault = fault
        response = await client.get("/api/v1/environments", headers=LENSES_AUTH)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            json.loads(response.content)
        assert response.headers["Content-Type"].startswith(
            "text/html" if fault == "wrong_content_type" else "application/json"
        )


async def test_schema_drift_breaks_fields_but_keeps_names() -> None:
    async with running(schema_drift=True, environments=10, agents=20) as (simulator, client):
        items = (await client.get("/api/v1/environments", headers=LENSES_AUTH)).json()["items"]
        assert [item["name"] for item in items] == list(simulator.world.environments)
        assert items != [simulator.world.environment(name) for name in simulator.world.environments]
        agents = (await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)).json()["data"]
        assert agents != simulator.world.agents(simulator.world.confluent_environment_ids[0])[:10]


async def test_a_next_link_can_repeat_an_earlier_page_token() -> None:
    async with running(agents=60) as (simulator, client):
        simulator.faults.confluent_repeat_token = True
        first = (await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)).json()["metadata"]["next"]
        second = (await client.get(first, auth=CONFLUENT_AUTH)).json()["metadata"]["next"]

        def token(url: str) -> str:
            return parse_qs(urlsplit(url).query)["page_token"][0]

        assert token(second) == token(first)


async def test_listing_requests_can_be_redirected_to_another_base_url() -> None:
    async with running(agents=30) as (simulator, client):
        other = simulator.url.replace("127.0.0.1", "localhost")
        simulator.faults.confluent_redirect_to = other
        response = await client.get(listing_path(simulator) + "?page_size=5", auth=CONFLUENT_AUTH)
        assert response.status_code == 307
        assert response.headers["Location"] == other + listing_path(simulator) + "?page_size=5"
        assert response.headers["X-Request-Id"]
        followed = await client.get(response.headers["Location"], auth=CONFLUENT_AUTH)
        assert followed.status_code == 200 and len(followed.json()["data"]) == 5
        assert simulator.requests[-1].host == other.removeprefix("http://")


async def test_the_stream_can_be_switched_off() -> None:
    async with running(sse_enabled=False) as (_, client):
        response = await client.get("/api" + STREAM_PATH, headers=LENSES_AUTH)
        assert response.status_code == 404
        assert response.json()["type"] == "not_found"


async def test_the_next_event_can_be_cut_in_the_middle() -> None:
    async with running() as (simulator, client), stream(client) as reader:
        await reader.next_event()
        simulator.faults.sse_cut_next_event()
        simulator.world.set_tier(next(iter(simulator.world.environments)), "production")
        with pytest.raises((httpx.HTTPError, StopAsyncIteration)):
            await reader.next_event()
        assert b"event: environment_updated" in reader.raw
        assert not bytes(reader.raw).endswith(b"\n\n")
        assert simulator.faults.sse_cut_next is False


async def test_a_stalled_stream_sends_nothing_not_even_keepalives() -> None:
    async with running(keepalive_interval=0.02) as (simulator, client):
        simulator.faults.sse_stall = True
        async with client.stream("GET", "/api" + STREAM_PATH, headers=LENSES_AUTH) as response:
            assert response.status_code == 200
            simulator.world.set_tier(next(iter(simulator.world.environments)), "production")
            chunks = response.aiter_bytes()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await anext(chunks)


async def test_streams_are_dropped_every_few_seconds_when_asked() -> None:
    async with (
        running(keepalive_interval=0.05, sse_drop_interval=0.2) as (_, client),
        stream(client) as reader,
    ):
        await reader.next_event()
        with pytest.raises(StopAsyncIteration):
            await reader.next_event(within=5.0)


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
async def test_line_endings_can_be_chosen(ending: str) -> None:
    # A lone \r could still be followed by \n: readers settle the last line when the next bytes come.
    async with (
        running(sse_line_ending=ending, keepalive_interval=0.05) as (simulator, client),
        stream(client) as reader,
    ):
        snapshot = await reader.next_event()
        assert json.loads(snapshot.data)["items"]
        simulator.world.delete_environment(next(iter(simulator.world.environments)))
        deleted = await reader.next_event()
        assert deleted.event == "environment_deleted"
        raw = bytes(reader.raw)
        assert (ending + ending).encode() in raw
        if ending == "\r":
            assert b"\n" not in raw


async def test_data_can_span_several_lines_and_standard_clients_join_them() -> None:
    async with running(sse_multiline_data=True) as (simulator, client):
        async with stream(client) as reader:
            await reader.next_event()
            assert bytes(reader.raw).count(b"\ndata: ") > 10
        async with aconnect_sse(client, "GET", "/api" + STREAM_PATH, headers=LENSES_AUTH) as source:
            snapshot = await anext(source.aiter_sse())
            assert (
                json.loads(snapshot.data)["items"]
                == json.loads(simulator.world.environment_list_bytes())["items"]
            )


async def test_garbage_lines_and_unknown_events_surround_real_ones() -> None:
    async with (
        running(sse_garbage=True, sse_unknown_events=True) as (simulator, client),
        stream(client) as reader,
    ):
        await reader.next_event()
        name = next(iter(simulator.world.environments))
        simulator.world.set_tier(name, "production")
        updated = await reader.next_event()
        assert updated.event == "environment_updated" and json.loads(updated.data)["name"] == name
        unknown = await reader.next_event()
        assert unknown.event == "environment_renamed"
        assert int(unknown.id or 0) > int(updated.id or 0)
        assert b"this line has no colon" in reader.raw


async def test_oversize_events_and_raw_injections_reach_open_streams() -> None:
    async with running() as (simulator, client), stream(client) as reader:
        await reader.next_event()
        assert simulator.faults.sse_oversize_event(100_000) == 1
        oversize = await reader.next_event()
        assert len(oversize.data) > 100_000 and json.loads(oversize.data)["name"] == "oversize"
        simulator.faults.sse_inject("event: mystery\ndata: {}\n\n")
        assert (await reader.next_event()).event == "mystery"


async def test_malformed_events() -> None:
    async with running(malformed_rate=1.0) as (simulator, client), stream(client) as reader:
        await reader.next_event()
        simulator.world.set_tier(next(iter(simulator.world.environments)), "production")
        with pytest.raises(ValueError):
            json.loads((await reader.next_event()).data)


async def test_a_flood_of_events() -> None:
    async with running(sse_flood_per_second=500.0) as (_, client), stream(client) as reader:
        await reader.next_event()
        for _ in range(25):
            assert (await reader.next_event()).event == "environment_updated"


async def test_admin_endpoint_sets_and_clears_faults_and_changes_the_world() -> None:
    async with running() as (simulator, client):
        state = (await client.get("/_admin/state")).json()
        assert state["organization_id"] == simulator.world.organization_id
        assert state["environments"] == len(simulator.world.environments)

        set_faults = await client.post("/_admin/faults", json={"error_rate": 1.0, "random_api": "lenses"})
        assert set_faults.status_code == 200 and set_faults.json()["error_rate"] == 1.0
        assert (await client.get("/api/v1/environments", headers=LENSES_AUTH)).status_code >= 500
        assert (await client.post("/_admin/faults", json={"no_such_switch": 1})).status_code == 400
        assert (await client.post("/_admin/faults", json={"error_rate": "high"})).status_code == 400
        assert (await client.post("/_admin/faults/clear")).json()["error_rate"] == 0.0
        assert (await client.get("/api/v1/environments", headers=LENSES_AUTH)).status_code == 200

        script = {"status": 429, "api": "lenses", "path": "/v1/environments", "headers": {"Retry-After": "2"}}
        assert (await client.post("/_admin/faults/scripts", json=script)).status_code == 200
        limited = await client.get("/api/v1/environments", headers=LENSES_AUTH)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"

        name = next(iter(simulator.world.environments))
        action = {"action": "disconnect_agent", "args": {"name": name}}
        assert (await client.post("/_admin/world", json=action)).status_code == 200
        assert not simulator.world.connected(name)
        assert (
            await client.post("/_admin/world", json={"action": "delete_environment", "args": {"name": "x"}})
        ).status_code == 404
        assert (await client.post("/_admin/world", json={"action": "__init__"})).status_code == 400

        assert (await client.post("/_admin/lenses-token", json={"token": "next"})).status_code == 200
        assert (
            await client.get("/api/v1/environments", headers={"Authorization": "Bearer next"})
        ).status_code == 200

        async with stream(client, headers={"Authorization": "Bearer next"}) as reader:
            await reader.next_event()
            await client.post("/_admin/sse/inject", json={"raw": "event: odd\ndata: 1\n\n"})
            assert (await reader.next_event()).event == "odd"

        async def no_streams() -> bool:
            return (await client.get("/_admin/state")).json()["sse_subscribers"] == 0

        await eventually(no_streams, what="the stream to close")


@pytest.mark.parametrize(("style", "expected"), [("empty", ""), ("null", None)])
async def test_the_last_page_can_say_empty_or_null_next(style: str, expected: str | None) -> None:
    async with running(agents=4) as (simulator, client):
        simulator.faults.set(confluent_last_next=style)
        metadata = (await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)).json()["metadata"]
        assert "next" in metadata and metadata["next"] == expected
        with pytest.raises(ValueError):
            simulator.faults.set(confluent_last_next="sometimes")
