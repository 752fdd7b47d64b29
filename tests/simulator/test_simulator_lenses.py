"""The simulated Lenses HQ API: the reference examples' shapes, both path prefixes, auth, validation, the
Kafka connections, key renewal and the proxy prefix."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.simulator.simulator_fixtures import LENSES_AUTH, running, shape, shape_differences

TIMESTAMP = "2025-03-14T09:26:53.589Z"

# The reference's Environment example, restated (values are placeholders; only keys and kinds matter).
ENVIRONMENT_EXAMPLE: dict[str, Any] = {
    "name": "sample",
    "display_name": "Sample",
    "lrn": "lrn-sample",
    "id": "id-sample",
    "created_at": TIMESTAMP,
    "tier": "staging",
    "status": {
        "agent_connected": True,
        "agent": {
            "updated_at": TIMESTAMP,
            "roundtrip_duration": 7,
            "agent": {
                "hostname": "host",
                "version": "6.0.0",
                "capabilities": {"metrics": True, "k2k": False},
            },
            "metrics": {
                "kafka": {"version": "3.7.0", "num_brokers": 3, "updated_at": TIMESTAMP},
                "data": {
                    "num_topics": 2,
                    "num_partitions": 4,
                    "num_schemas": 5,
                    "num_policies": 6,
                    "topic_data_total_bytes": 7,
                    "data_in_bytes_per_sec": 8,
                    "data_out_bytes_per_sec": 9,
                    "data_in_messages_per_sec": 10,
                    "updated_at": TIMESTAMP,
                },
                "apps": {"num_consumers": 11, "num_other_apps": 12, "updated_at": TIMESTAMP},
                "connect": {"num_clusters": 13, "num_connectors": 14, "updated_at": TIMESTAMP},
                "other": {"num_issues": 15, "updated_at": TIMESTAMP},
            },
        },
    },
    "metadata": {"owner": "someone"},
}
# Creation and key renewal answer the environment plus its agent key.
CREATED_EXAMPLE = {**ENVIRONMENT_EXAMPLE, "agent_key": "key-sample"}
CREATE_REQUEST_EXAMPLE = {
    "name": "sample-env",
    "display_name": "Sample environment",
    "tier": "development",
    "metadata": {"owner": "someone"},
}
PATCH_REQUEST_EXAMPLE = {"tier": "production", "metadata": {"owner": "else"}, "display_name": "Renamed"}
CONNECTION_EXAMPLE = {"name": "main", "override_broker_addresses": ["broker:9092"], "auth": {}}
CONNECTION_PUT_EXAMPLE = {"override_broker_addresses": ["broker:9092"], "auth": {}}
ERROR_EXAMPLE = {
    "type": "not_found",
    "title": "Missing",
    "status": 404,
    "invalid_fields": [{"name": "field", "error": "reference_not_found", "title": "Missing field"}],
    "sso_url": "https://sso.example",
    "request_id": "request-sample",
}
# Fields HQ added after the reference was written; allowed on top of the example's.
LATER_FIELDS = frozenset({"publish", "protocol_version"})
# Metadata keys are free-form.
METADATA_SHAPE = {"metadata": {}}


def assert_environment_shape(actual: dict[str, Any], example: dict[str, Any] = ENVIRONMENT_EXAMPLE) -> None:
    expected = shape(example)
    expected["metadata"] = shape(actual.get("metadata"))
    assert isinstance(actual.get("metadata"), dict)
    assert all(isinstance(value, str) for value in actual["metadata"].values())
    assert shape_differences(expected, shape(actual), allowed_extra=LATER_FIELDS) == []


def assert_error(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert body["type"] == type_
    assert body["status"] == status
    assert body["request_id"] and body["request_id"] == response.headers["X-Request-Id"]
    assert shape_differences(shape(ERROR_EXAMPLE), shape(body)) == []
    return body


@pytest.mark.parametrize("prefix", ["/api/v1", "/v1"])
async def test_list_and_get_have_the_reference_shape_under_both_prefixes(prefix: str) -> None:
    async with running(environments=9) as (_, client):
        response = await client.get(f"{prefix}/environments", headers=LENSES_AUTH)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Request-Id"]
        body = response.json()
        assert list(body) == ["items"]
        items = body["items"]
        assert len(items) == 9
        connected = [item for item in items if item["status"]["agent_connected"]]
        assert connected and len(connected) < len(items)
        for item in connected:
            assert_environment_shape(item)
        for item in items:
            if not item["status"]["agent_connected"]:
                assert item["status"] == {"agent_connected": False}
        single = await client.get(f"{prefix}/environments/{connected[0]['name']}", headers=LENSES_AUTH)
        assert single.json() == connected[0]
        missing = await client.get(f"{prefix}/environments/nope", headers=LENSES_AUTH)
        assert_error(missing, 404, "not_found")


async def test_environments_carry_agent_identity_metadata_and_nanosecond_round_trips() -> None:
    async with running(environments=12) as (_, client):
        items = (await client.get("/api/v1/environments", headers=LENSES_AUTH)).json()["items"]
        assert {item["tier"] for item in items} == {"development", "staging", "production"}
        for item in items:
            assert set(item["metadata"]) == {"team", "region"}
            agent = item["status"].get("agent")
            if agent:
                assert agent["agent"]["hostname"] and agent["agent"]["version"]
                assert isinstance(agent["agent"]["protocol_version"], int)
                assert agent["roundtrip_duration"] >= 1_000_000  # a millisecond and more, in nanoseconds


async def test_create_patch_renew_and_delete_accept_the_reference_requests() -> None:
    async with running() as (simulator, client):
        created = await client.post("/api/v1/environments", json=CREATE_REQUEST_EXAMPLE, headers=LENSES_AUTH)
        assert created.status_code == 201
        body = created.json()
        assert body["agent_key"]
        assert body["name"] == "sample-env" and body["tier"] == "development"
        # A new environment has no agent yet: the creation answer lacks the dynamic fields.
        assert body["status"] == {"agent_connected": False}
        expected = shape(CREATED_EXAMPLE)
        expected["status"] = {"agent_connected": "boolean"}
        assert shape_differences(expected, shape(body)) == []

        patched = await client.patch(
            "/v1/environments/sample-env", json=PATCH_REQUEST_EXAMPLE, headers=LENSES_AUTH
        )
        assert patched.status_code == 200
        assert patched.json()["tier"] == "production"
        assert patched.json()["display_name"] == "Renamed"
        assert patched.json()["metadata"] == {"owner": "else"}
        assert simulator.world.environments["sample-env"]["tier"] == "production"

        renewed = await client.post("/api/v1/environments/sample-env/renew-key", headers=LENSES_AUTH)
        assert renewed.status_code == 200
        assert renewed.json()["agent_key"] != body["agent_key"]
        assert shape_differences(expected, shape(renewed.json())) == []

        deleted = await client.delete("/api/v1/environments/sample-env", headers=LENSES_AUTH)
        assert deleted.status_code == 204 and deleted.content == b""
        assert "sample-env" not in simulator.world.environments
        again = await client.delete("/api/v1/environments/sample-env", headers=LENSES_AUTH)
        assert_error(again, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "Upper", "tier": "development"}, {"name"}),
        ({"name": "-leading", "tier": "development"}, {"name"}),
        ({"name": "trailing-", "tier": "development"}, {"name"}),
        ({"name": "under_score"}, {"name"}),
        ({"name": "a" * 64}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"tier": "development"}, {"name"}),
        ({"name": "fine", "tier": "qa"}, {"tier"}),
        ({"name": "Bad!", "tier": "prod", "metadata": {"n": 1}}, {"name", "tier", "metadata"}),
    ],
)
async def test_create_rejects_invalid_names_and_tiers(body: dict[str, Any], fields: set[str]) -> None:
    async with running() as (simulator, client):
        before = set(simulator.world.environments)
        response = await client.post("/api/v1/environments", json=body, headers=LENSES_AUTH)
        error = assert_error(response, 400, "validation_error")
        assert {entry["name"] for entry in error["invalid_fields"]} == fields
        assert set(simulator.world.environments) == before


async def test_create_accepts_the_longest_valid_name_and_rejects_a_duplicate() -> None:
    async with running() as (_, client):
        name = "a" + "-b" * 30 + "c"
        assert len(name) == 62
        longest = "x" * 63
        for candidate in (name, longest, "7"):
            response = await client.post("/v1/environments", json={"name": candidate}, headers=LENSES_AUTH)
            assert response.status_code == 201, response.text
            assert response.json()["tier"] == "development"
        duplicate = await client.post("/v1/environments", json={"name": "7"}, headers=LENSES_AUTH)
        assert_error(duplicate, 409, "conflict")


async def test_patch_validates_the_tier() -> None:
    async with running() as (simulator, client):
        name = next(iter(simulator.world.environments))
        response = await client.patch(f"/v1/environments/{name}", json={"tier": "live"}, headers=LENSES_AUTH)
        assert assert_error(response, 400, "validation_error")["invalid_fields"][0]["name"] == "tier"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "hq-token"}, {"Authorization": "Basic aDpx"}],
)
async def test_requests_without_the_token_are_unauthorised(headers: dict[str, str]) -> None:
    async with running() as (_, client):
        for method, path in [
            ("GET", "/api/v1/environments"),
            ("GET", "/v1/environments/live/sse"),
            ("POST", "/v1/environments"),
            ("GET", "/v1/environments/x/kafka-connections"),
        ]:
            response = await client.request(method, path, headers=headers)
            assert_error(response, 401, "unauthorised")


async def test_the_token_can_be_rotated_at_runtime() -> None:
    async with running() as (simulator, client):
        simulator.set_lenses_token("rotated")
        old = await client.get("/api/v1/environments", headers=LENSES_AUTH)
        assert_error(old, 401, "unauthorised")
        new = await client.get("/api/v1/environments", headers={"Authorization": "Bearer rotated"})
        assert new.status_code == 200


async def test_kafka_connections_list_get_put_and_delete() -> None:
    async with running() as (simulator, client):
        name = next(iter(simulator.world.environments))
        base = f"/api/v1/environments/{name}/kafka-connections"
        put = await client.put(f"{base}/main", json=CONNECTION_PUT_EXAMPLE, headers=LENSES_AUTH)
        assert put.status_code == 200
        assert put.json() == {"name": "main", **CONNECTION_PUT_EXAMPLE}
        listed = (await client.get(base, headers=LENSES_AUTH)).json()
        assert list(listed) == ["items"]
        for item in listed["items"]:
            assert shape_differences(shape(CONNECTION_EXAMPLE), shape(item)) == []
        assert "main" in {item["name"] for item in listed["items"]}
        single = await client.get(f"{base}/main", headers=LENSES_AUTH)
        assert shape_differences(shape(CONNECTION_EXAMPLE), shape(single.json())) == []
        bad = await client.put(f"{base}/main", json={"override_broker_addresses": "x"}, headers=LENSES_AUTH)
        assert_error(bad, 400, "validation_error")
        assert (await client.delete(f"{base}/main", headers=LENSES_AUTH)).status_code == 204
        assert_error(await client.get(f"{base}/main", headers=LENSES_AUTH), 404, "not_found")
        assert_error(
            await client.get("/v1/environments/nope/kafka-connections", headers=LENSES_AUTH), 404, "not_found"
        )


async def test_proxy_answers_agent_not_connected_for_an_environment_without_agent() -> None:
    async with running() as (simulator, client):
        name = next(iter(simulator.world.environments))
        simulator.world.disconnect_agent(name)
        for method in ("GET", "POST"):
            response = await client.request(
                method, f"/api/v1/environments/{name}/proxy/api/topics", headers=LENSES_AUTH
            )
            assert_error(response, 503, "agent_not_connected")
        simulator.world.connect_agent(name)
        response = await client.get(f"/api/v1/environments/{name}/proxy/api/topics", headers=LENSES_AUTH)
        assert response.status_code == 200
        assert response.json()["path"] == "/api/topics"
        missing = await client.get("/api/v1/environments/nope/proxy/", headers=LENSES_AUTH)
        assert_error(missing, 404, "not_found")


async def test_unknown_routes_answer_in_each_api_error_format() -> None:
    async with running() as (_, client):
        lenses = await client.get("/api/v1/nothing-here", headers=LENSES_AUTH)
        assert_error(lenses, 404, "not_found")
        method = await client.put("/api/v1/environments", headers=LENSES_AUTH)
        assert method.status_code == 405 and method.json()["request_id"] == method.headers["X-Request-Id"]
        confluent = await client.get("/sql/v1/nothing-here")
        assert confluent.status_code == 404
        assert confluent.json()["errors"][0]["id"] == confluent.headers["X-Request-Id"]
