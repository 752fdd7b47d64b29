"""Decoding Flink agents and rendering their series: expected exposition text next to the input object."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import ConfluentTarget
from exporter.confluent import metrics
from exporter.confluent.model import InvalidAgent, decode_agent, kafka_cluster_of
from exporter.exposition.store import Store
from tests.exposition.store_helpers import render
from tests.support import parse_samples, promtool_check_metrics

ORGANIZATION = "7f5c1a2e-0000-4000-8000-000000000001"
TARGET = ConfluentTarget(
    name="prod-flink",
    url="https://flink.us-east-1.aws.confluent.cloud",
    organization_id=ORGANIZATION,
    environment_id="env-abc123",
    tier="production",
)


def agent_object(**overrides: Any) -> dict[str, Any]:
    """An agent as the listing returns it."""
    raw: dict[str, Any] = {
        "api_version": "sql/v1",
        "kind": "Agent",
        "metadata": {
            "self": "https://flink.us-east-1.aws.confluent.cloud/sql/v1/organizations/"
            f"{ORGANIZATION}/environments/env-abc123/databases/lkc-f3a90de/agents/chat-listener",
            "uid": "12345678-1234-1234-1234-123456789012",
            "resource_version": "a23av",
            "created_at": "2025-10-24T16:23:29Z",
            "updated_at": "2025-10-25T08:00:00.5Z",
        },
        "name": "chat-listener",
        "organization_id": ORGANIZATION,
        "environment_id": "env-abc123",
        "spec": {
            "description": "Listens to chat messages and creates issues",
            "model": "chat_listener",
            "prompt": 'Create an issue "now"\nteam bebb0fa3',
            "tools": ["linear-mcp-tool", "search"],
            "properties": {"max_iterations": "5"},
        },
        "status": {"phase": "RUNNING"},
    }
    raw.update(overrides)
    return raw


def exposition(*raws: Any) -> str:
    store = Store([metrics.GROUP])
    rendered = {}
    for raw in raws:
        agent = decode_agent(raw)
        rendered[agent.key] = metrics.GROUP.render(agent, metrics.common_values(TARGET, agent))
    store.replace(metrics.GROUP, TARGET.name, rendered)
    return render(store).decode()


COMMON = (
    f'organization_id="{ORGANIZATION}",environment_id="env-abc123",kafka_cluster_id="lkc-f3a90de",'
    'agent="chat-listener",tier="production"'
)


def test_full_agent_renders_every_family() -> None:
    assert exposition(agent_object()) == (
        "# HELP confluent_flink_agent_info Flink agent identity: the model it uses and its uid; value 1.\n"
        "# TYPE confluent_flink_agent_info gauge\n"
        f'confluent_flink_agent_info{{{COMMON},model="chat_listener",'
        'uid="12345678-1234-1234-1234-123456789012"} 1\n'
        "# HELP confluent_flink_agent_status_phase 1 for the agent's current phase, 0 for the other known "
        "phases (READY, RUNNING).\n"
        "# TYPE confluent_flink_agent_status_phase gauge\n"
        f'confluent_flink_agent_status_phase{{{COMMON},phase="READY"}} 0\n'
        f'confluent_flink_agent_status_phase{{{COMMON},phase="RUNNING"}} 1\n'
        "# HELP confluent_flink_agent_tools Tools available to the agent.\n"
        "# TYPE confluent_flink_agent_tools gauge\n"
        f"confluent_flink_agent_tools{{{COMMON}}} 2\n"
        "# HELP confluent_flink_agent_tool_info One series per tool available to the agent; value 1.\n"
        "# TYPE confluent_flink_agent_tool_info gauge\n"
        f'confluent_flink_agent_tool_info{{{COMMON},tool="linear-mcp-tool"}} 1\n'
        f'confluent_flink_agent_tool_info{{{COMMON},tool="search"}} 1\n'
        "# HELP confluent_flink_agent_created_timestamp_seconds When the agent was created (Unix seconds).\n"
        "# TYPE confluent_flink_agent_created_timestamp_seconds gauge\n"
        f"confluent_flink_agent_created_timestamp_seconds{{{COMMON}}} 1761323009\n"
        "# HELP confluent_flink_agent_updated_timestamp_seconds When the agent was last updated "
        "(Unix seconds).\n"
        "# TYPE confluent_flink_agent_updated_timestamp_seconds gauge\n"
        f"confluent_flink_agent_updated_timestamp_seconds{{{COMMON}}} 1761379200.5\n"
        "# HELP confluent_flink_agent_phase_changes_total Changes of the agent's phase seen between two "
        "polls since the exporter first saw the agent.\n"
        "# TYPE confluent_flink_agent_phase_changes_total counter\n"
        f"confluent_flink_agent_phase_changes_total{{{COMMON}}} 0\n"
    )


def test_free_text_never_becomes_a_label() -> None:
    text = exposition(agent_object())
    for free_text in ("Listens to chat", "Create an issue", "max_iterations", "bebb0fa3"):
        assert free_text not in text


def test_unknown_phase_adds_its_own_series_and_known_ones_stay() -> None:
    samples = parse_samples(exposition(agent_object(status={"phase": "DEGRADED"})))
    phases = {s.labels["phase"]: s.value for s in samples if s.name == "confluent_flink_agent_status_phase"}
    assert phases == {"READY": 0, "RUNNING": 0, "DEGRADED": 1}


def test_ready_phase_is_one_hot() -> None:
    samples = parse_samples(exposition(agent_object(status={"phase": "READY"})))
    phases = {s.labels["phase"]: s.value for s in samples if s.name == "confluent_flink_agent_status_phase"}
    assert phases == {"READY": 1, "RUNNING": 0}


@pytest.mark.parametrize(
    ("overrides", "gone"),
    [
        ({"status": None}, {"confluent_flink_agent_status_phase"}),
        ({"status": {"phase": 3}}, {"confluent_flink_agent_status_phase"}),
        ({"spec": {"model": "m"}}, {"confluent_flink_agent_tools", "confluent_flink_agent_tool_info"}),
        (
            {"spec": {"model": "m", "tools": "search"}},
            {"confluent_flink_agent_tools", "confluent_flink_agent_tool_info"},
        ),
        (
            {"metadata": {"uid": "u", "created_at": "yesterday", "updated_at": 1761379200}},
            {
                "confluent_flink_agent_created_timestamp_seconds",
                "confluent_flink_agent_updated_timestamp_seconds",
            },
        ),
    ],
)
def test_missing_or_wrongly_typed_fields_drop_only_their_series(
    overrides: dict[str, Any], gone: set[str]
) -> None:
    everything = {s.name for s in parse_samples(exposition(agent_object()))}
    left = {s.name for s in parse_samples(exposition(agent_object(**overrides)))}
    assert left == everything - gone


def test_bare_agent_keeps_its_info_series_with_empty_labels() -> None:
    samples = parse_samples(exposition({"name": "bare"}))
    common = {
        "organization_id": ORGANIZATION,
        "environment_id": "env-abc123",
        "kafka_cluster_id": "",
        "agent": "bare",
        "tier": "production",
    }
    assert [(s.name, s.labels) for s in samples] == [
        (
            "confluent_flink_agent_info",
            {
                "organization_id": ORGANIZATION,
                "environment_id": "env-abc123",
                "kafka_cluster_id": "",
                "agent": "bare",
                "tier": "production",
                "model": "",
                "uid": "",
            },
        ),
        ("confluent_flink_agent_phase_changes_total", common),
    ]


def test_tools_are_deduplicated_and_non_strings_ignored() -> None:
    samples = parse_samples(exposition(agent_object(spec={"tools": ["a", "a", 7, None, "", "b"]})))
    assert sorted(s.labels["tool"] for s in samples if s.name == "confluent_flink_agent_tool_info") == [
        "a",
        "b",
    ]
    assert [s.value for s in samples if s.name == "confluent_flink_agent_tools"] == [2]


@pytest.mark.parametrize(
    "raw", [None, [], "agent", {"name": ""}, {"name": 5}, {"spec": {}}, {"name": "x" * 256}]
)
def test_an_agent_without_a_usable_name_is_invalid(raw: Any) -> None:
    with pytest.raises(InvalidAgent):
        decode_agent(raw)


@pytest.mark.parametrize(
    ("self_url", "cluster"),
    [
        (
            "https://flink.us-west1.aws.confluent.cloud/sql/v1/environments/env-123/databases/lkc-123/agents/a",
            "lkc-123",
        ),
        ("https://h/sql/v1/organizations/o/environments/e/databases/lkc-9z/agents/b?x=1", "lkc-9z"),
        ("https://h/sql/v1/organizations/o/environments/e/databases/lkc-9z/agents", "lkc-9z"),
        ("https://api.confluent.cloud/v2/kafka-clusters/lkc-f3a90de", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_kafka_cluster_comes_from_the_self_link(self_url: str | None, cluster: str) -> None:
    assert kafka_cluster_of(self_url) == cluster


def test_label_values_are_escaped_and_promtool_accepts_them() -> None:
    awkward = agent_object(
        name="quote-agent",
        spec={"model": 'say "hi"\\\nnow', "tools": ['t"1', "tö\\ol\n2"]},
        status={"phase": "WEIRD\nPHASE"},
    )
    text = exposition(awkward, agent_object())
    assert promtool_check_metrics(text) == ""
    samples = parse_samples(text)
    info = [
        s for s in samples if s.name == "confluent_flink_agent_info" and s.labels["agent"] == "quote-agent"
    ]
    assert info[0].labels["model"] == 'say "hi"\\\nnow'
    tools = {s.labels["tool"] for s in samples if s.name == "confluent_flink_agent_tool_info"}
    assert {'t"1', "tö\\ol\n2"} <= tools


def test_two_agents_render_each_family_contiguously() -> None:
    second = agent_object(name="other", status={"phase": "READY"})
    text = exposition(agent_object(), second)
    names = [line.split("{")[0] for line in text.splitlines() if not line.startswith("#")]
    seen: list[str] = []
    for name in names:
        if not seen or seen[-1] != name:
            assert name not in seen, f"{name} is split"
            seen.append(name)
