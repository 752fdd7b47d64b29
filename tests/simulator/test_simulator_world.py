"""The simulator's seeded world (generation, deterministic churn, hostile objects, background churn) and the
`simulate` command-line flags."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from exporter.simulator.options import add_simulator_arguments, options_from_arguments
from exporter.simulator.world import UnknownObject, World
from tests.simulator.simulator_fixtures import LENSES_AUTH, options, running, stream
from tests.support import eventually

FIXED_CLOCK = 1_760_000_000.0


def world(**overrides: Any) -> World:
    return World(options(**overrides), clock=lambda: FIXED_CLOCK)


def phases(model: World) -> list[str]:
    return [
        agent["status"]["phase"]
        for environment_id in model.confluent_environment_ids
        for agent in model.agents(environment_id)
    ]


def test_the_same_seed_builds_the_same_world_and_another_seed_another() -> None:
    one, two, other = world(seed=3), world(seed=3), world(seed=4)
    assert one.environment_list_bytes() == two.environment_list_bytes()
    assert one.organization_id == two.organization_id
    assert phases(one) == phases(two)
    assert one.environment_list_bytes() != other.environment_list_bytes()


def test_generation_covers_tiers_disconnected_environments_and_several_confluent_environments() -> None:
    model = world(environments=24, agents=24)
    environments = list(model.environments.values())
    assert len(environments) == 24
    assert {environment["tier"] for environment in environments} == {"development", "staging", "production"}
    disconnected = [e for e in environments if not e["status"]["agent_connected"]]
    assert 0 < len(disconnected) < 24
    assert all("agent" not in environment["status"] for environment in disconnected)
    assert len(model.confluent_environment_ids) >= 2
    assert all(len(model.agents(environment_id)) == 12 for environment_id in model.confluent_environment_ids)
    assert all(len(clusters) >= 2 for clusters in model.kafka_cluster_ids.values())
    assert set(phases(model)) <= {"READY", "RUNNING"}


def test_ticks_are_deterministic_and_change_figures_connections_and_phases() -> None:
    one, two = world(environments=16, agents=40), world(environments=16, agents=40)
    start = one.environment_list_bytes()
    start_phases = phases(one)
    seen_phases: set[str] = set()
    connection_changes = 0
    for _ in range(120):
        before = {name: one.connected(name) for name in one.environments}
        one.tick()
        two.tick()
        connection_changes += sum(before[name] != one.connected(name) for name in one.environments)
        seen_phases |= set(phases(one))
    assert one.environment_list_bytes() == two.environment_list_bytes()
    assert phases(one) == phases(two)
    assert one.environment_list_bytes() != start and phases(one) != start_phases
    assert connection_changes >= 2
    assert {"READY", "RUNNING", "DEGRADED"} <= seen_phases


def test_world_changes_through_its_methods() -> None:
    model = world(agents=6)
    name = next(iter(model.environments))
    model.set_metrics(name, "data", num_topics=42)
    assert model.environment(name)["status"]["agent"]["metrics"]["data"]["num_topics"] == 42
    environment_id = model.confluent_environment_ids[0]
    model.add_agent(environment_id, "extra-agent", phase="RUNNING", model="m", tools=["a", "b"])
    model.set_agent_phase(environment_id, "extra-agent", "FAILED")
    agent = model.agent(environment_id, "extra-agent")
    assert agent["status"] == {"phase": "FAILED"} and agent["spec"]["tools"] == ["a", "b"]
    model.delete_agent(environment_id, "extra-agent")
    with pytest.raises(UnknownObject):
        model.agent(environment_id, "extra-agent")
    model.set_agent_count(environment_id, 0)
    assert model.agents(environment_id) == []


async def test_hostile_raw_environments_are_listed_and_streamed_as_they_are() -> None:
    hostile: list[Any] = [
        {"name": 'quote"back\\slash\nnew', "status": {"agent_connected": "yes"}, "tier": None},
        ["not", "an", "object"],
        {"name": "huge", "status": {"agent": {"roundtrip_duration": 10**40}}},
    ]
    async with running() as (simulator, client), stream(client) as reader:
        await reader.next_event()
        for obj in hostile:
            simulator.world.put_raw_environment(obj)
            event = await reader.next_event()
            assert event.event == "environment_updated" and json.loads(event.data) == obj
        items = (await client.get("/api/v1/environments", headers=LENSES_AUTH)).json()["items"]
        assert all(obj in items for obj in hostile)


async def test_raw_agents_are_listed_as_they_are() -> None:
    async with running(agents=0) as (simulator, client):
        environment_id = simulator.world.confluent_environment_ids[0]
        simulator.world.put_raw_agent(environment_id, {"name": "odd", "status": "RUNNING"})
        simulator.world.put_raw_agent(environment_id, "not an agent")
        path = f"/sql/v1/organizations/{simulator.world.organization_id}/environments/{environment_id}/agents"
        response = await client.get(path, auth=("key", "secret"))
        assert response.json()["data"] == ["not an agent", {"name": "odd", "status": "RUNNING"}]


async def test_background_churn_changes_the_world_when_switched_on() -> None:
    async with running(churn=True, churn_interval=0.01) as (simulator, client), stream(client) as reader:
        await reader.next_event()
        start = phases(simulator.world)

        async def changed() -> bool:
            return phases(simulator.world) != start

        await eventually(changed, what="agents' phases to change")
        assert (await reader.next_event()).event == "environment_updated"


def test_command_line_flags_build_the_options() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    defaults, host, port = options_from_arguments(parser.parse_args([]))
    assert (host, port) == ("127.0.0.1", 9991)
    assert defaults.environments == 24 and not defaults.churn and defaults.sse_enabled
    flags = (
        "--listen 0.0.0.0:0 --environments 10000 --agents 10000 --seed 9 --churn --updates-per-second 200"
        " --latency 0.1 --error-rate 0.2 --rate-limited-rate 0.1 --rate-limited-without-headers --no-sse"
        " --sse-drop-every 30 --malformed-rate 0.05 --schema-drift --sse-line-ending crlf"
        " --sse-multiline-data --sse-garbage --sse-unknown-events --sse-flood 50"
    )
    arguments = parser.parse_args(flags.split())
    chosen, host, port = options_from_arguments(arguments)
    assert (host, port) == ("0.0.0.0", 0)
    assert (chosen.environments, chosen.agents, chosen.seed, chosen.churn) == (10000, 10000, 9, True)
    assert chosen.updates_per_second == 200.0 and chosen.latency == 0.1 and chosen.error_rate == 0.2
    assert chosen.rate_limited_rate == 0.1 and not chosen.rate_limited_headers and not chosen.sse_enabled
    assert chosen.sse_drop_interval == 30.0 and chosen.malformed_rate == 0.05 and chosen.schema_drift
    assert chosen.sse_line_ending == "\r\n" and chosen.sse_multiline_data and chosen.sse_garbage
    assert chosen.sse_unknown_events and chosen.sse_flood_per_second == 50.0
    for bad in (["--listen", "nowhere"], ["--error-rate", "2"], ["--latency", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
