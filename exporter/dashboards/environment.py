"""Environment detail: one Lenses HQ environment (`$environment`) over time — its agent, Kafka, data,
applications, Connect, issues, and how fresh each metrics section is."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from exporter.dashboards.common import (
    AMBER,
    CONNECTED,
    GREEN,
    JOB,
    RED,
    Column,
    base,
    datasource_variable,
    job_variable,
    label_variable,
    query,
    row,
    stat_panel,
    state_panel,
    table_panel,
    target_variable,
    timeseries_panel,
)

UID = "lenses-hq-environment"

FILTER = f'{JOB}, target=~"$target", environment="$environment"'


def value(metric: str, by: str = "") -> str:
    """The environment's series, one per `by` label set, whatever the number of exporter replicas."""
    labels = ", ".join(part for part in ("target", "environment", by) if part)
    return f"max by ({labels}) ({metric}{{{FILTER}}})"


def build() -> dashboard.Dashboard:
    """The environment detail dashboard."""
    return (
        base(
            UID,
            "Lenses HQ / Environment",
            "One Lenses HQ environment over time: its agent, Kafka, data, applications, Connect, issues and "
            "the freshness of each metrics section.",
        )
        .with_variable(datasource_variable())
        .with_variable(job_variable())
        .with_variable(target_variable())
        .with_variable(
            label_variable(
                "tier",
                "Tier",
                f'label_values(lenses_environment_info{{{JOB}, target=~"$target"}}, tier)',
                "Narrows the environment list to these tiers.",
            )
        )
        .with_variable(
            label_variable(
                "environment",
                "Environment",
                "label_values(lenses_environment_info"
                f'{{{JOB}, target=~"$target", tier=~"$tier"}}, environment)',
                "The Lenses HQ environment shown (of every selected HQ that has one by this name).",
                multi=False,
            )
        )
        .with_row(row("Agent"))
        .with_panel(
            stat_panel(
                "Agent",
                "Whether the environment's agent is connected to HQ right now.",
                "none",
                query(value("lenses_environment_agent_connected"), instant=True),
                steps=((None, RED), (1, GREEN)),
                mappings=CONNECTED,
                no_value="unknown",
            )
        )
        .with_panel(
            stat_panel(
                "Round trip",
                "Round trip between HQ and the agent, last value.",
                "s",
                query(value("lenses_environment_agent_roundtrip_seconds"), instant=True),
                steps=((None, GREEN), (0.5, AMBER), (1, RED)),
                no_value="no agent",
            )
        )
        .with_panel(
            stat_panel(
                "Issues",
                "Issues the agent reports right now.",
                "none",
                query(value("lenses_environment_issues"), instant=True),
                steps=((None, GREEN), (1, AMBER)),
            )
        )
        .with_panel(
            stat_panel(
                "Created",
                "When the environment was created in HQ.",
                "dateTimeFromNow",
                query(value("lenses_environment_created_timestamp_seconds") + " * 1000", instant=True),
                no_value="unknown",
            )
        )
        .with_panel(
            table_panel(
                "Agent and Kafka",
                "The agent's host, versions, capabilities reported, and the Kafka version.",
                [
                    Column(
                        "display name",
                        f"max by (target, environment, display_name) (lenses_environment_info{{{FILTER}}})",
                        hidden=True,
                    ),
                    Column(
                        "agent",
                        "max by (target, environment, hostname, version, protocol_version) "
                        f"(lenses_environment_agent_info{{{FILTER}}})",
                        hidden=True,
                    ),
                    Column(
                        "kafka",
                        "label_replace(max by (target, environment, version) (lenses_environment_kafka_info{"
                        + FILTER
                        + '}), "kafka_version", "$1", "version", "(.*)")',
                        hidden=True,
                    ),
                    Column(
                        "Capabilities enabled",
                        "sum by (target, environment) "
                        f"({value('lenses_environment_agent_capability', 'capability')})",
                        "none",
                    ),
                ],
                keep=["target", "display_name", "hostname", "version", "protocol_version", "kafka_version"],
                rename={
                    "target": "HQ",
                    "display_name": "display name",
                    "version": "agent version",
                    "protocol_version": "protocol",
                    "kafka_version": "kafka version",
                },
                span=8,
                height=4,
            )
        )
        .with_panel(
            stat_panel(
                "Disconnects",
                "Agent disconnects over the dashboard's time range, every one the exporter saw on the live "
                "stream or between listings, however short.",
                "none",
                query(f"{value('lenses_environment_agent_disconnects_total')} or vector(0)"),
                steps=((None, GREEN), (1, AMBER), (3, RED)),
                calc="delta",
            )
        )
        .with_panel(
            stat_panel(
                "Last connectivity change",
                "When the exporter last saw the agent connect or disconnect (since the exporter started).",
                "dateTimeFromNow",
                query(
                    value("lenses_environment_agent_last_change_timestamp_seconds") + " * 1000", instant=True
                ),
                no_value="none seen",
            )
        )
        .with_panel(
            timeseries_panel(
                "Connects and disconnects",
                "Connectivity changes the exporter saw, per interval: disconnects and connects.",
                "none",
                [
                    query(
                        "sum by (target, environment) (increase(lenses_environment_agent_disconnects_total{"
                        + FILTER
                        + "}[$__rate_interval]))",
                        "disconnects",
                        ref="A",
                    ),
                    query(
                        "sum by (target, environment) (increase(lenses_environment_agent_connects_total{"
                        + FILTER
                        + "}[$__rate_interval]))",
                        "connects",
                        ref="B",
                    ),
                ],
                span=16,
                height=4,
            )
        )
        .with_panel(
            state_panel(
                "Agent connection",
                "The agent's connection to HQ over time.",
                query(value("lenses_environment_agent_connected"), "agent"),
                CONNECTED,
            )
        )
        .with_panel(
            timeseries_panel(
                "Round trip",
                "Round trip between HQ and the agent over time.",
                "s",
                [query(value("lenses_environment_agent_roundtrip_seconds"), "round trip")],
            )
        )
        .with_row(row("Kafka"))
        .with_panel(
            timeseries_panel(
                "Brokers",
                "Kafka brokers the agent sees; a drop means a broker left the cluster.",
                "none",
                [query(value("lenses_environment_kafka_brokers"), "brokers")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Kafka connections",
                "Kafka connections defined for the environment in HQ (when the exporter polls them).",
                "none",
                [query(value("lenses_environment_kafka_connections"), "connections")],
            )
        )
        .with_row(row("Data"))
        .with_panel(
            timeseries_panel(
                "Topics and partitions",
                "Topics and partitions in the cluster.",
                "none",
                [
                    query(value("lenses_environment_topics"), "topics", ref="A"),
                    query(value("lenses_environment_partitions"), "partitions", ref="B"),
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Schemas and policies",
                "Schemas in the registry and data policies defined.",
                "none",
                [
                    query(value("lenses_environment_schemas"), "schemas", ref="A"),
                    query(value("lenses_environment_policies"), "policies", ref="B"),
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Data held",
                "Bytes held in all topics.",
                "bytes",
                [query(value("lenses_environment_topic_data_bytes"), "topic data")],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Throughput",
                "Bytes per second produced into and consumed from the cluster.",
                "Bps",
                [
                    query(value("lenses_environment_data_in_bytes_per_second"), "in", ref="A"),
                    query(value("lenses_environment_data_out_bytes_per_second"), "out", ref="B"),
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Messages in",
                "Messages per second produced into the cluster.",
                "mps",
                [query(value("lenses_environment_data_in_messages_per_second"), "messages in")],
            )
        )
        .with_row(row("Applications and Connect"))
        .with_panel(
            timeseries_panel(
                "Applications",
                "Consumer applications and other applications Lenses knows of.",
                "none",
                [
                    query(value("lenses_environment_consumers"), "consumers", ref="A"),
                    query(value("lenses_environment_other_apps"), "other apps", ref="B"),
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Kafka Connect",
                "Kafka Connect clusters and connectors.",
                "none",
                [
                    query(value("lenses_environment_connect_clusters"), "clusters", ref="A"),
                    query(value("lenses_environment_connectors"), "connectors", ref="B"),
                ],
            )
        )
        .with_row(row("Issues and freshness"))
        .with_panel(
            timeseries_panel(
                "Issues",
                "Issues the agent reports over time.",
                "none",
                [query(value("lenses_environment_issues"), "issues")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Metrics age by section",
                "Seconds since each metrics section (kafka, data, apps, connect, other) was updated, and "
                "since the agent last reported.",
                "s",
                [
                    query(
                        "time() - "
                        + value("lenses_environment_metrics_updated_timestamp_seconds", "section"),
                        "{{target}} {{section}}",
                        ref="A",
                    ),
                    query(
                        "time() - " + value("lenses_environment_agent_updated_timestamp_seconds"),
                        "agent",
                        ref="B",
                    ),
                ],
            )
        )
    )
