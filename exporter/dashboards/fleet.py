"""Fleet overview: every Lenses HQ environment at once — tiers, agents connected or not, and one table row
per environment with its agent, versions, round trip, topics, throughput, issues and freshness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from exporter.dashboards.common import (
    AMBER,
    BLUE,
    CONNECTED,
    GREEN,
    JOB,
    RED,
    Column,
    bargauge_panel,
    base,
    datasource_variable,
    job_variable,
    label_variable,
    query,
    row,
    stat_panel,
    table_panel,
    target_variable,
    timeseries_panel,
)

UID = "lenses-hq-fleet"

FILTER = f'{JOB}, target=~"$target", tier=~"$tier", environment=~"$environment"'


def per_environment(metric: str, extra: str = "") -> str:
    """One series per environment of each HQ, whatever the number of exporter replicas scraping it."""
    return f"max by (target, environment, tier) ({metric}{{{FILTER}{extra}}})"


def build() -> dashboard.Dashboard:
    """The fleet overview dashboard."""
    environments = per_environment("lenses_environment_info")
    connected = per_environment("lenses_environment_agent_connected")
    disconnects = per_environment("lenses_environment_agent_disconnects_total")
    detail = (
        "/d/lenses-hq-environment?${datasource:queryparam}&${job:queryparam}"
        "&var-target=${__data.fields.target}&var-environment=${__data.fields.environment}&${__url_time_range}"
    )
    return (
        base(
            UID,
            "Lenses HQ / Fleet overview",
            "Every Lenses HQ environment: tiers, agents connected or not, versions, round trip, topics, "
            "throughput, issues and how fresh each environment's metrics are.",
        )
        .with_variable(datasource_variable())
        .with_variable(job_variable())
        .with_variable(target_variable())
        .with_variable(
            label_variable(
                "tier",
                "Tier",
                f'label_values(lenses_environment_info{{{JOB}, target=~"$target"}}, tier)',
                "Lenses HQ environment tier (development, staging, production).",
            )
        )
        .with_variable(
            label_variable(
                "environment",
                "Environment",
                "label_values(lenses_environment_info"
                f'{{{JOB}, target=~"$target", tier=~"$tier"}}, environment)',
                "Lenses HQ environment name.",
            )
        )
        .with_row(row("Fleet"))
        .with_panel(
            stat_panel(
                "Environments",
                "Environments known to Lenses HQ in the selected tiers.",
                "none",
                query(f"count({environments}) or vector(0)", instant=True),
            )
        )
        .with_panel(
            stat_panel(
                "Agents connected",
                "Environments whose agent is connected to HQ right now.",
                "none",
                query(f"count({connected} == 1) or vector(0)", instant=True),
                steps=((None, GREEN),),
            )
        )
        .with_panel(
            stat_panel(
                "Agents disconnected",
                "Environments whose agent is not connected to HQ (including environments never given an "
                "agent).",
                "none",
                query(f"count({connected} == 0) or vector(0)", instant=True),
                steps=((None, GREEN), (1, RED)),
            )
        )
        .with_panel(
            stat_panel(
                "Issues",
                "Issues reported by all agents together.",
                "none",
                query(f"sum({per_environment('lenses_environment_issues')}) or vector(0)", instant=True),
                steps=((None, GREEN), (1, AMBER)),
            )
        )
        .with_panel(
            stat_panel(
                "Data in",
                "Bytes per second produced into all the environments' Kafka clusters.",
                "Bps",
                query(
                    f"sum({per_environment('lenses_environment_data_in_bytes_per_second')}) or vector(0)",
                    instant=True,
                ),
            )
        )
        .with_panel(
            stat_panel(
                "Oldest metrics",
                "Age of the stalest metrics section of any connected environment: how far behind the "
                "freshest view of the fleet can be.",
                "s",
                query(
                    "max(time() - min by (target, environment, tier) "
                    f"(lenses_environment_metrics_updated_timestamp_seconds{{{FILTER}}}) "
                    f"and on (target, environment, tier) {connected} == 1)",
                    instant=True,
                ),
                steps=((None, GREEN), (300, AMBER), (900, RED)),
            )
        )
        .with_panel(
            bargauge_panel(
                "Environments by tier",
                "How many environments each tier holds.",
                "none",
                query(f"count by (tier) ({environments})", "{{tier}}", instant=True),
            )
        )
        .with_panel(
            timeseries_panel(
                "Agents connected and disconnected",
                "Environments by agent state over time, per tier.",
                "none",
                [
                    query(f"count by (tier) ({connected} == 1)", "{{tier}} connected", ref="A"),
                    query(f"count by (tier) ({connected} == 0)", "{{tier}} disconnected", ref="B"),
                ],
                span=16,
                stacked=True,
            )
        )
        .with_row(row("Connectivity"))
        .with_panel(
            stat_panel(
                "Connectivity unknown",
                "Environments for which HQ reports no boolean agent_connected (missing, null or another "
                "type): neither connected nor disconnected, and no disconnect alert can fire for them.",
                "none",
                query(
                    f"count({environments} unless on (target, environment, tier) {connected}) or vector(0)",
                    instant=True,
                ),
                steps=((None, GREEN), (1, AMBER)),
            )
        )
        .with_panel(
            stat_panel(
                "Agent disconnects",
                "Disconnects of all agents over the dashboard's time range, every one the exporter saw on "
                "the live stream or between listings, however short.",
                "none",
                query(f"sum({disconnects}) or vector(0)"),
                steps=((None, GREEN), (1, AMBER)),
                calc="delta",
            )
        )
        .with_panel(
            bargauge_panel(
                "Disconnects by environment",
                "Each environment's agent disconnects over the dashboard's time range: a flapping agent "
                "stands out even when it was never down for a whole scrape interval.",
                "none",
                query(disconnects, "{{target}}/{{environment}}"),
                span=16,
                calc="delta",
            )
        )
        .with_row(row("Environments"))
        .with_panel(
            table_panel(
                "Environments",
                "One row per environment of each HQ, with its display name: agent state and versions, "
                "round trip, Kafka brokers, topics, throughput, issues, and the age of its stalest metrics "
                "section. The name links to the environment's own dashboard.",
                [
                    Column(
                        "Display name",
                        "max by (target, environment, tier, display_name) "
                        f"(lenses_environment_info{{{FILTER}}})",
                        hidden=True,
                    ),
                    Column("Agent", connected, "none", tuple(CONNECTED)),
                    Column(
                        "Agent version",
                        "max by (target, environment, tier, hostname, version) "
                        f"(lenses_environment_agent_info{{{FILTER}}})",
                        hidden=True,
                    ),
                    Column(
                        "Kafka version",
                        "label_replace(max by (target, environment, tier, version) "
                        "(lenses_environment_kafka_info{"
                        + FILTER
                        + '}), "kafka_version", "$1", "version", "(.*)")',
                        hidden=True,
                    ),
                    Column("Round trip", per_environment("lenses_environment_agent_roundtrip_seconds"), "s"),
                    Column("Brokers", per_environment("lenses_environment_kafka_brokers"), "none"),
                    Column("Topics", per_environment("lenses_environment_topics"), "none"),
                    Column("In", per_environment("lenses_environment_data_in_bytes_per_second"), "Bps"),
                    Column("Out", per_environment("lenses_environment_data_out_bytes_per_second"), "Bps"),
                    Column("Issues", per_environment("lenses_environment_issues"), "none"),
                    Column(
                        "Metrics age",
                        "time() - min by (target, environment, tier) "
                        f"(lenses_environment_metrics_updated_timestamp_seconds{{{FILTER}}})",
                        "s",
                    ),
                ],
                keep=[
                    "target",
                    "environment",
                    "display_name",
                    "tier",
                    "hostname",
                    "version",
                    "kafka_version",
                ],
                rename={
                    "target": "HQ",
                    "display_name": "display name",
                    "version": "agent version",
                    "kafka_version": "kafka version",
                },
                links={"environment": ("Environment detail", detail)},
                height=12,
            )
        )
        .with_panel(
            table_panel(
                "Kafka connections",
                "Each Kafka connection HQ defines for an environment, its auth type and whether it overrides "
                "the agent's brokers (shown when the exporter polls Kafka connections).",
                [
                    Column(
                        "connection",
                        "max by (target, environment, connection, auth_type, brokers_overridden) "
                        f"(lenses_environment_kafka_connection_info{{{FILTER}}})",
                        hidden=True,
                    )
                ],
                keep=["target", "environment", "connection", "auth_type", "brokers_overridden"],
                rename={
                    "target": "HQ",
                    "auth_type": "auth type",
                    "brokers_overridden": "brokers overridden",
                },
                height=8,
            )
        )
        .with_row(row("Trends"))
        .with_panel(
            timeseries_panel(
                "Agent round trip",
                "Round trip between HQ and each environment's agent.",
                "s",
                [
                    query(
                        per_environment("lenses_environment_agent_roundtrip_seconds"),
                        "{{target}}/{{environment}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Metrics age",
                "Seconds since each environment's stalest metrics section was updated.",
                "s",
                [
                    query(
                        "time() - min by (target, environment, tier) "
                        f"(lenses_environment_metrics_updated_timestamp_seconds{{{FILTER}}})",
                        "{{target}}/{{environment}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Data in by tier",
                "Bytes per second produced into the Kafka clusters, summed per tier.",
                "Bps",
                [
                    query(
                        f"sum by (tier) ({per_environment('lenses_environment_data_in_bytes_per_second')})",
                        "{{tier}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Issues by environment",
                "Issues each environment's agent reports.",
                "none",
                [query(per_environment("lenses_environment_issues"), "{{target}}/{{environment}}")],
            )
        )
    )


__all__ = ["BLUE", "UID", "build"]
