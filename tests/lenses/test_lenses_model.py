"""Decoding HQ environments and rendering their series: the expected exposition text next to the input
object. Each input is a listing body as HQ sends it; the text is what `/metrics` serves for it."""

from __future__ import annotations

import json
from typing import Any

from exporter import decode
from exporter.exposition.store import Store
from exporter.lenses import metrics
from exporter.lenses.model import decode_environment
from tests.exposition.store_helpers import render

TARGET = "prod-hq"


def exposition(environment: dict[str, Any] | str, metadata_labels: tuple[str, ...] = ()) -> str:
    """The exposition text for one environment, given as an object or as its JSON text."""
    text = environment if isinstance(environment, str) else json.dumps(environment)
    group = metrics.build_group("ns", metadata_labels)
    store = Store([group])
    rendered = {}
    for raw in decode.listing(f'{{"items": [{text}]}}'.encode(), "items"):
        decoded = decode_environment(raw, metadata_labels)
        rendered[decoded.name] = group.render(decoded, metrics.common_values(decoded, TARGET))
    store.replace(group, TARGET, rendered)
    return render(store).decode()


def series(text: str) -> str:
    """The sample lines alone (the families' HELP and TYPE lines are the full case's business)."""
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


FULL = {
    "name": "payments-prod",
    "display_name": "Payments (EU)",
    "lrn": "lrn:lenses:hq:environment/payments-prod",
    "id": "3c2b7d6e-5f7a-4b1e-9a55-2f0d8c1e4a10",
    "created_at": "2025-10-24T16:23:29.612Z",
    "tier": "production",
    "status": {
        "agent_connected": True,
        "agent": {
            "updated_at": "2025-10-25T08:00:00Z",
            "roundtrip_duration": 1500000,
            "agent": {
                "hostname": "agent-payments-0",
                "version": "6.0.2",
                "protocol_version": 3,
                "capabilities": {"metrics": True, "k2k": False, "publish": True},
            },
            "metrics": {
                "kafka": {"version": "3.7.1", "num_brokers": 3, "updated_at": "2025-10-25T08:00:01Z"},
                "data": {
                    "num_topics": 120,
                    "num_partitions": 960,
                    "num_schemas": 85,
                    "num_policies": 4,
                    "topic_data_total_bytes": 52428800000,
                    "data_in_bytes_per_sec": 1048576.5,
                    "data_out_bytes_per_sec": 2097152,
                    "data_in_messages_per_sec": 3500,
                    "updated_at": "2025-10-25T08:00:02Z",
                },
                "apps": {"num_consumers": 42, "num_other_apps": 7, "updated_at": "2025-10-25T08:00:03Z"},
                "connect": {"num_clusters": 2, "num_connectors": 18, "updated_at": "2025-10-25T08:00:04Z"},
                "other": {"num_issues": 1, "updated_at": "2025-10-25T08:00:05Z"},
                "future_block": {"num_widgets": 9},
            },
        },
    },
    "metadata": {"owner": "payments-team", "cost_center": "not allow-listed"},
    "capabilities_added_later": {"publish": True},
}


def test_a_full_environment_renders_every_family() -> None:
    COMMON = 'environment="payments-prod",tier="production",target="prod-hq"'
    assert exposition(FULL, ("owner",)) == (
        "# HELP lenses_environment_info Environment identity; value 1.\n"
        "# TYPE lenses_environment_info gauge\n"
        f'lenses_environment_info{{{COMMON},display_name="Payments '
        '(EU)",id="3c2b7d6e-5f7a-4b1e-9a55-2f0d8c1e4a10",'
        f'lrn="lrn:lenses:hq:environment/payments-prod"}} 1\n'
        "# HELP lenses_environment_created_timestamp_seconds When the environment was created "
        "(Unix seconds).\n"
        "# TYPE lenses_environment_created_timestamp_seconds gauge\n"
        f"lenses_environment_created_timestamp_seconds{{{COMMON}}} 1761323009.612\n"
        "# HELP lenses_environment_agent_connected 1 when HQ reports the environment's agent "
        "connected, 0 when it reports it disconnected; absent when HQ reports no boolean "
        "(unknown is not disconnected).\n"
        "# TYPE lenses_environment_agent_connected gauge\n"
        f"lenses_environment_agent_connected{{{COMMON}}} 1\n"
        "# HELP lenses_environment_agent_disconnects_total Changes from connected to "
        "disconnected the exporter saw (live stream or listings) since it first saw the "
        "environment.\n"
        "# TYPE lenses_environment_agent_disconnects_total counter\n"
        f"lenses_environment_agent_disconnects_total{{{COMMON}}} 0\n"
        "# HELP lenses_environment_agent_connects_total Changes from disconnected to connected "
        "the exporter saw (live stream or listings) since it first saw the environment.\n"
        "# TYPE lenses_environment_agent_connects_total counter\n"
        f"lenses_environment_agent_connects_total{{{COMMON}}} 0\n"
        "# HELP lenses_environment_agent_info The agent's hostname, version and protocol "
        "version; value 1.\n"
        "# TYPE lenses_environment_agent_info gauge\n"
        f'lenses_environment_agent_info{{{COMMON},hostname="agent-payments-0",version="6.0.2",'
        f'protocol_version="3"}} 1\n'
        "# HELP lenses_environment_agent_capability 1 when the agent reports the capability "
        "enabled, 0 when disabled.\n"
        "# TYPE lenses_environment_agent_capability gauge\n"
        f'lenses_environment_agent_capability{{{COMMON},capability="k2k"}} 0\n'
        f'lenses_environment_agent_capability{{{COMMON},capability="metrics"}} 1\n'
        f'lenses_environment_agent_capability{{{COMMON},capability="publish"}} 1\n'
        "# HELP lenses_environment_agent_roundtrip_seconds Round-trip time between HQ and the "
        "agent.\n"
        "# TYPE lenses_environment_agent_roundtrip_seconds gauge\n"
        f"lenses_environment_agent_roundtrip_seconds{{{COMMON}}} 0.0015\n"
        "# HELP lenses_environment_agent_updated_timestamp_seconds When the agent last reported "
        "(Unix seconds).\n"
        "# TYPE lenses_environment_agent_updated_timestamp_seconds gauge\n"
        f"lenses_environment_agent_updated_timestamp_seconds{{{COMMON}}} 1761379200\n"
        "# HELP lenses_environment_kafka_info The Kafka version the agent reports; value 1.\n"
        "# TYPE lenses_environment_kafka_info gauge\n"
        f'lenses_environment_kafka_info{{{COMMON},version="3.7.1"}} 1\n'
        "# HELP lenses_environment_kafka_brokers Kafka brokers.\n"
        "# TYPE lenses_environment_kafka_brokers gauge\n"
        f"lenses_environment_kafka_brokers{{{COMMON}}} 3\n"
        "# HELP lenses_environment_topics Topics.\n"
        "# TYPE lenses_environment_topics gauge\n"
        f"lenses_environment_topics{{{COMMON}}} 120\n"
        "# HELP lenses_environment_partitions Partitions.\n"
        "# TYPE lenses_environment_partitions gauge\n"
        f"lenses_environment_partitions{{{COMMON}}} 960\n"
        "# HELP lenses_environment_schemas Schemas.\n"
        "# TYPE lenses_environment_schemas gauge\n"
        f"lenses_environment_schemas{{{COMMON}}} 85\n"
        "# HELP lenses_environment_policies Data policies.\n"
        "# TYPE lenses_environment_policies gauge\n"
        f"lenses_environment_policies{{{COMMON}}} 4\n"
        "# HELP lenses_environment_topic_data_bytes Bytes of data held in all topics.\n"
        "# TYPE lenses_environment_topic_data_bytes gauge\n"
        f"lenses_environment_topic_data_bytes{{{COMMON}}} 52428800000\n"
        "# HELP lenses_environment_data_in_bytes_per_second Bytes per second produced into the "
        "cluster.\n"
        "# TYPE lenses_environment_data_in_bytes_per_second gauge\n"
        f"lenses_environment_data_in_bytes_per_second{{{COMMON}}} 1048576.5\n"
        "# HELP lenses_environment_data_out_bytes_per_second Bytes per second consumed from the "
        "cluster.\n"
        "# TYPE lenses_environment_data_out_bytes_per_second gauge\n"
        f"lenses_environment_data_out_bytes_per_second{{{COMMON}}} 2097152\n"
        "# HELP lenses_environment_data_in_messages_per_second Messages per second produced into "
        "the cluster.\n"
        "# TYPE lenses_environment_data_in_messages_per_second gauge\n"
        f"lenses_environment_data_in_messages_per_second{{{COMMON}}} 3500\n"
        "# HELP lenses_environment_consumers Consumer applications.\n"
        "# TYPE lenses_environment_consumers gauge\n"
        f"lenses_environment_consumers{{{COMMON}}} 42\n"
        "# HELP lenses_environment_other_apps Applications other than consumers.\n"
        "# TYPE lenses_environment_other_apps gauge\n"
        f"lenses_environment_other_apps{{{COMMON}}} 7\n"
        "# HELP lenses_environment_connect_clusters Kafka Connect clusters.\n"
        "# TYPE lenses_environment_connect_clusters gauge\n"
        f"lenses_environment_connect_clusters{{{COMMON}}} 2\n"
        "# HELP lenses_environment_connectors Kafka Connect connectors.\n"
        "# TYPE lenses_environment_connectors gauge\n"
        f"lenses_environment_connectors{{{COMMON}}} 18\n"
        "# HELP lenses_environment_issues Issues the agent reports.\n"
        "# TYPE lenses_environment_issues gauge\n"
        f"lenses_environment_issues{{{COMMON}}} 1\n"
        "# HELP lenses_environment_metrics_updated_timestamp_seconds When each metrics section "
        "was last updated (Unix seconds).\n"
        "# TYPE lenses_environment_metrics_updated_timestamp_seconds gauge\n"
        f'lenses_environment_metrics_updated_timestamp_seconds{{{COMMON},section="kafka"}} '
        "1761379201\n"
        f'lenses_environment_metrics_updated_timestamp_seconds{{{COMMON},section="data"}} '
        "1761379202\n"
        f'lenses_environment_metrics_updated_timestamp_seconds{{{COMMON},section="apps"}} '
        "1761379203\n"
        f'lenses_environment_metrics_updated_timestamp_seconds{{{COMMON},section="connect"}} '
        "1761379204\n"
        f'lenses_environment_metrics_updated_timestamp_seconds{{{COMMON},section="other"}} '
        "1761379205\n"
        "# HELP lenses_environment_metadata_info Allow-listed environment metadata as labels; "
        "value 1.\n"
        "# TYPE lenses_environment_metadata_info gauge\n"
        f'lenses_environment_metadata_info{{{COMMON},metadata_owner="payments-team"}} 1\n'
    )


def test_missing_and_null_fields_drop_only_the_series_they_feed() -> None:
    raw = {
        "name": "staging-eu",
        "display_name": None,
        "lrn": "lrn:lenses:hq:environment/staging-eu",
        "id": "9d1f0a3b-0000-4000-8000-00000000000b",
        "created_at": None,
        "tier": "staging",
        "status": {
            "agent_connected": None,
            "agent": {
                "updated_at": "0001-01-01T00:00:00Z",
                "roundtrip_duration": -5,
                "agent": {"hostname": "agent-staging-0", "capabilities": {"metrics": "yes"}},
                "metrics": {
                    "kafka": {"num_brokers": None},
                    "data": {"num_topics": "17", "num_partitions": -1, "updated_at": "not a time"},
                    "apps": None,
                },
            },
        },
    }
    COMMON = 'environment="staging-eu",tier="staging",target="prod-hq"'
    assert series(exposition(raw)) == (
        f'lenses_environment_info{{{COMMON},display_name="",'
        f'id="9d1f0a3b-0000-4000-8000-00000000000b",lrn="lrn:lenses:hq:environment/staging-eu"}} '
        "1\n"
        f"lenses_environment_agent_disconnects_total{{{COMMON}}} 0\n"
        f"lenses_environment_agent_connects_total{{{COMMON}}} 0\n"
        f'lenses_environment_agent_info{{{COMMON},hostname="agent-staging-0",version="",'
        f'protocol_version=""}} 1\n'
        f"lenses_environment_topics{{{COMMON}}} 17\n"
    )
    assert decode_environment(raw).invalid_fields == (
        "agent_connected",
        "num_partitions",
        "roundtrip_duration",
    )


def test_a_disconnected_agent_has_no_agent_series() -> None:
    # With no agent connected, HQ sends no `status.agent` at all.
    raw = {
        "name": "dev-sandbox",
        "display_name": "Sandbox",
        "lrn": "lrn:lenses:hq:environment/dev-sandbox",
        "id": "11111111-2222-4333-8444-555555555555",
        "created_at": "2025-01-02T03:04:05Z",
        "tier": "development",
        "status": {"agent_connected": False},
    }
    COMMON = 'environment="dev-sandbox",tier="development",target="prod-hq"'
    assert series(exposition(raw)) == (
        f'lenses_environment_info{{{COMMON},display_name="Sandbox",'
        f'id="11111111-2222-4333-8444-555555555555",lrn="lrn:lenses:hq:environment/dev-sandbox"}} '
        "1\n"
        f"lenses_environment_created_timestamp_seconds{{{COMMON}}} 1735787045\n"
        f"lenses_environment_agent_connected{{{COMMON}}} 0\n"
        f"lenses_environment_agent_disconnects_total{{{COMMON}}} 0\n"
        f"lenses_environment_agent_connects_total{{{COMMON}}} 0\n"
    )


def test_tier_and_label_values_are_escaped() -> None:
    # As HQ writes it on the wire: JSON escapes for the quote, the backslash, the newline and non-ASCII.
    raw = (
        '{"name": "analytics", "display_name": "Analytics \\"BI\\" \\\\ reports\\nsecond line", '
        '"lrn": "lrn:lenses:hq:environment/analytics", "id": "a", "created_at": "2025-10-24T16:23:29Z", '
        '"tier": "prod\\"uction\\\\", "status": {"agent_connected": true, '
        '"agent": {"agent": {"hostname": "h\\u00f6st-\\u00fc", "version": "6.0"}}}, '
        '"metadata": {"owner": "data \\"platform\\"\\nteam"}}'
    )
    COMMON = 'environment="analytics",tier="prod\\"uction\\\\",target="prod-hq"'
    text = exposition(raw, ("owner",))
    assert series(text) == (
        f'lenses_environment_info{{{COMMON},display_name="Analytics \\"BI\\" \\\\ reports\\nsecond '
        f'line",id="a",lrn="lrn:lenses:hq:environment/analytics"}} 1\n'
        f"lenses_environment_created_timestamp_seconds{{{COMMON}}} 1761323009\n"
        f"lenses_environment_agent_connected{{{COMMON}}} 1\n"
        f"lenses_environment_agent_disconnects_total{{{COMMON}}} 0\n"
        f"lenses_environment_agent_connects_total{{{COMMON}}} 0\n"
        f'lenses_environment_agent_info{{{COMMON},hostname="höst-ü",version="6.0",'
        f'protocol_version=""}} 1\n'
        f'lenses_environment_metadata_info{{{COMMON},metadata_owner="data \\"platform\\"\\nteam"}} 1\n'
    )
