"""The simulated Confluent Flink agents API: the reference shapes, paging, auth, the rate limit and the
per-database agent calls."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.simulator.simulator_fixtures import (
    CONFLUENT_AUTH,
    OAUTH_TOKEN,
    database_path,
    list_all_agents,
    listing_path,
    running,
    shape,
    shape_differences,
)

# The reference's Agent example, restated.
AGENT_EXAMPLE: dict[str, Any] = {
    "api_version": "sql/v1",
    "kind": "Agent",
    "metadata": {
        "self": "https://flink.example/sql/v1/environments/env-1/databases/lkc-1/agents/sample",
        "uid": "00000000-0000-4000-8000-000000000000",
        "resource_version": "r1",
        "resource_name": "",
        "created_at": "2024-01-02T03:04:05-00:00",
        "updated_at": "2024-01-02T03:04:05-00:00",
        "labels": {},
    },
    "name": "sample",
    "organization_id": "00000000-0000-4000-8000-000000000001",
    "environment_id": "env-1",
    "spec": {
        "description": "Reads messages and opens issues",
        "model": "model-a",
        "prompt": "Summarise the message",
        "tools": ["tool-a"],
        "properties": {},
    },
    "status": {"phase": "READY"},
}
# The reference's list metadata may hold first, last, prev, next and total_size; all optional.
LIST_METADATA_KEYS = {"first", "last", "prev", "next", "total_size"}
FAILURE_400_EXAMPLE = {
    "errors": [
        {"id": "i", "status": "400", "code": "c", "title": "t", "detail": "d", "source": {"parameter": "p"}}
    ]
}
FAILURE_401_EXAMPLE = {"errors": [{"id": "i", "status": "401", "code": "c", "title": "t", "detail": "d"}]}
FAILURE_404_EXAMPLE = {"errors": [{"id": "i", "status": "404", "title": "t"}]}
SELF_PATTERN = re.compile(
    r"^https?://[^/]+/sql/v1/environments/(env-[a-z0-9]+)/databases/(lkc-[a-z0-9]+)/agents/(.+)$"
)


def agent_shape(agent: dict[str, Any]) -> Any:
    found = shape(agent)
    found["metadata"]["labels"] = {}
    found["spec"]["properties"] = {}
    assert all(isinstance(v, str) for v in agent["metadata"]["labels"].values())
    assert all(isinstance(v, str) for v in agent["spec"]["properties"].values())
    return found


def assert_failure(response: httpx.Response, status: int, example: dict[str, Any]) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["X-Request-Id"]
    body: dict[str, Any] = response.json()
    assert shape_differences(shape(example), shape(body)) == []
    assert body["errors"][0]["status"] == str(status)
    assert body["errors"][0]["id"] == response.headers["X-Request-Id"]
    return body


async def test_listing_has_the_reference_shape() -> None:
    async with running(agents=30) as (simulator, client):
        response = await client.get(listing_path(simulator), auth=CONFLUENT_AUTH)
        assert response.status_code == 200
        assert response.headers["X-Request-Id"]
        body = response.json()
        assert set(body) == {"api_version", "kind", "metadata", "data"}
        assert body["api_version"] == "sql/v1" and body["kind"] == "AgentList"
        assert set(body["metadata"]) <= LIST_METADATA_KEYS
        assert len(body["data"]) == 10  # the default page size
        for agent in body["data"]:
            assert shape_differences(agent_shape(AGENT_EXAMPLE), agent_shape(agent)) == []
            assert agent["organization_id"] == simulator.world.organization_id
            assert agent["environment_id"] == simulator.world.confluent_environment_ids[0]
            match = SELF_PATTERN.match(agent["metadata"]["self"])
            assert match, agent["metadata"]["self"]
            assert match.group(1) == agent["environment_id"] and match.group(3) == agent["name"]
            assert match.group(2) in simulator.world.kafka_cluster_ids[agent["environment_id"]]


async def test_the_world_spreads_agents_over_environments_clusters_models_and_tools() -> None:
    async with running(agents=60) as (simulator, client):
        clusters, models, tools, environments = set(), set(), set(), set()
        for environment_id in simulator.world.confluent_environment_ids:
            agents, _ = await list_all_agents(client, listing_path(simulator, environment_id), 100)
            environments |= {agent["environment_id"] for agent in agents}
            clusters |= {SELF_PATTERN.match(agent["metadata"]["self"]).group(2) for agent in agents}  # type: ignore[union-attr]
            models |= {agent["spec"]["model"] for agent in agents}
            tools |= {tool for agent in agents for tool in agent["spec"]["tools"]}
        assert len(environments) >= 2 and len(clusters) >= 4 and len(models) >= 3 and len(tools) >= 3


@pytest.mark.parametrize(
    ("count", "page_size"), [(0, None), (1, None), (100, 100), (101, 100), (1000, 100), (101, 7)]
)
async def test_paging_returns_every_agent_exactly_once_in_order(count: int, page_size: int | None) -> None:
    async with running(agents=0) as (simulator, client):
        environment_id = simulator.world.confluent_environment_ids[1]
        simulator.world.set_agent_count(environment_id, count)
        agents, pages = await list_all_agents(client, listing_path(simulator, environment_id), page_size)
        names = [agent["name"] for agent in agents]
        assert len(names) == count and len(set(names)) == count
        assert set(names) == {agent["name"] for agent in simulator.world.agents(environment_id)}
        keys = [(agent["metadata"]["created_at"], agent["name"]) for agent in agents]
        assert keys == sorted(keys)
        size = page_size or 10
        assert len(pages) == max(1, -(-count // size))
        assert not pages[-1].get("next")
        for metadata in pages[:-1]:
            next_url = urlsplit(metadata["next"])
            assert f"{next_url.scheme}://{next_url.netloc}" == simulator.url
            assert next_url.path == listing_path(simulator, environment_id)
            token = parse_qs(next_url.query)["page_token"][0]
            assert len(token) <= 255 and re.fullmatch(r"[A-Za-z0-9_-]+", token)


async def test_agents_sharing_a_creation_time_are_ordered_by_name() -> None:
    async with running(agents=0) as (simulator, client):
        environment_id = simulator.world.confluent_environment_ids[0]
        simulator.world.clock = lambda: 1_760_000_000.0
        for name in ("zeta", "alpha", "mid"):
            simulator.world.add_agent(environment_id, name)
        agents, _ = await list_all_agents(client, listing_path(simulator, environment_id), 2)
        assert [agent["name"] for agent in agents] == ["alpha", "mid", "zeta"]


async def test_next_links_use_the_host_the_client_asked() -> None:
    async with running(agents=30) as (simulator, client):
        localhost = simulator.url.replace("127.0.0.1", "localhost")
        response = await client.get(localhost + listing_path(simulator), auth=CONFLUENT_AUTH)
        assert response.json()["metadata"]["next"].startswith(localhost + "/sql/v1/")
        assert response.json()["data"][0]["metadata"]["self"].startswith(localhost + "/sql/v1/environments/")


@pytest.mark.parametrize("page_size", ["101", "0", "-1", "ten"])
async def test_invalid_page_size_is_refused(page_size: str) -> None:
    async with running() as (simulator, client):
        response = await client.get(
            listing_path(simulator), params={"page_size": page_size}, auth=CONFLUENT_AUTH
        )
        body = assert_failure(response, 400, FAILURE_400_EXAMPLE)
        assert body["errors"][0]["code"] == "invalid_page_size"
        assert body["errors"][0]["source"] == {"parameter": "page_size"}


@pytest.mark.parametrize(
    "token",
    ["garbled!", "bm90LWpzb24", base64.urlsafe_b64encode(b'{"c":"x"}').decode(), "A" * 300, ""],
)
async def test_a_garbled_page_token_is_refused(token: str) -> None:
    async with running() as (simulator, client):
        response = await client.get(
            listing_path(simulator), params={"page_token": token}, auth=CONFLUENT_AUTH
        )
        body = assert_failure(response, 400, FAILURE_400_EXAMPLE)
        assert body["errors"][0]["code"] == "invalid_page_token"


async def test_bearer_auth_is_accepted_and_bad_credentials_get_401_with_a_challenge() -> None:
    async with running() as (simulator, client):
        path = listing_path(simulator)
        bearer = await client.get(path, headers={"Authorization": f"Bearer {OAUTH_TOKEN}"})
        assert bearer.status_code == 200
        for auth in (None, httpx.BasicAuth("key", "wrong"), httpx.BasicAuth("other", "secret")):
            response = await client.get(path, auth=auth)
            assert_failure(response, 401, FAILURE_401_EXAMPLE)
            assert response.headers["WWW-Authenticate"].startswith("Basic ")
        for header in ("Bearer wrong", "Basic !!!", "Token x"):
            response = await client.get(path, headers={"Authorization": header})
            assert_failure(response, 401, FAILURE_401_EXAMPLE)


async def test_unknown_organization_environment_or_cluster_is_not_found() -> None:
    async with running() as (simulator, client):
        world = simulator.world
        environment_id = world.confluent_environment_ids[0]
        for path in (
            f"/sql/v1/organizations/{world.organization_id}/environments/env-none/agents",
            f"/sql/v1/organizations/00000000-0000-4000-8000-000000000000/environments/{environment_id}/agents",
            database_path(simulator, environment_id, "lkc-none") + "/anything",
        ):
            assert_failure(await client.get(path, auth=CONFLUENT_AUTH), 404, FAILURE_404_EXAMPLE)


async def test_rate_limit_answers_429_with_headers_and_an_empty_body() -> None:
    async with running(rate_limit_capacity=3, rate_limit_per_second=0.5) as (simulator, client):
        path = listing_path(simulator)
        statuses = [(await client.get(path, auth=CONFLUENT_AUTH)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await client.get(path, auth=CONFLUENT_AUTH)
        assert limited.status_code == 429
        assert limited.content == b""
        assert limited.headers["X-Request-Id"]
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["X-RateLimit-Limit"] == "3"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(limited.headers["X-RateLimit-Reset"]) <= 3  # relative seconds, not an epoch
        # The bucket is per credential: the bearer token has its own.
        other = await client.get(path, headers={"Authorization": f"Bearer {OAUTH_TOKEN}"})
        assert other.status_code == 200


async def test_single_agent_get_create_update_and_delete() -> None:
    async with running(agents=6) as (simulator, client):
        world = simulator.world
        environment_id = world.confluent_environment_ids[0]
        existing = world.agents(environment_id)[0]
        cluster = SELF_PATTERN.match(existing["metadata"]["self"]).group(2)  # type: ignore[union-attr]
        base = database_path(simulator, environment_id, cluster)
        got = await client.get(f"{base}/{existing['name']}", auth=CONFLUENT_AUTH)
        assert got.status_code == 200 and got.json()["name"] == existing["name"]
        other_cluster = next(c for c in world.kafka_cluster_ids[environment_id] if c != cluster)
        elsewhere = await client.get(
            f"{database_path(simulator, environment_id, other_cluster)}/{existing['name']}",
            auth=CONFLUENT_AUTH,
        )
        assert_failure(elsewhere, 404, FAILURE_404_EXAMPLE)

        spec = dict(AGENT_EXAMPLE["spec"])
        created = await client.post(base, json={"name": "new-agent", "spec": spec}, auth=CONFLUENT_AUTH)
        assert created.status_code == 200, created.text
        agent = created.json()
        assert agent["spec"] == spec and agent["status"] == {"phase": "READY"}
        assert SELF_PATTERN.match(agent["metadata"]["self"]).group(2) == cluster  # type: ignore[union-attr]
        duplicate = await client.post(base, json={"name": "new-agent", "spec": spec}, auth=CONFLUENT_AUTH)
        assert duplicate.status_code == 409
        invalid = await client.post(base, json={"name": "Not Valid", "spec": spec}, auth=CONFLUENT_AUTH)
        assert invalid.status_code == 400

        version = agent["metadata"]["resource_version"]
        update = {"metadata": {"resource_version": version}, "spec": {"model": "model-b"}}
        updated = await client.put(f"{base}/new-agent", json=update, auth=CONFLUENT_AUTH)
        assert updated.status_code == 200
        assert updated.json()["spec"]["model"] == "model-b"
        assert updated.json()["metadata"]["resource_version"] != version
        stale = await client.put(f"{base}/new-agent", json=update, auth=CONFLUENT_AUTH)
        assert stale.status_code == 409 and stale.json()["errors"][0]["status"] == "409"

        assert (await client.delete(f"{base}/new-agent", auth=CONFLUENT_AUTH)).status_code == 204
        assert_failure(await client.get(f"{base}/new-agent", auth=CONFLUENT_AUTH), 404, FAILURE_404_EXAMPLE)
