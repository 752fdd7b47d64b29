"""Confluent Flink agents: how many, in which phase, on which model, with which tools, and one table row
per agent."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from exporter.confluent.metrics import COMMON_LABELS
from exporter.dashboards.common import (
    AMBER,
    GREEN,
    JOB,
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
    timeseries_panel,
)

UID = "lenses-hq-flink-agents"

FILTER = f'{JOB}, tier=~"$tier", environment_id=~"$environment"'

AGENT = ", ".join(COMMON_LABELS)
"""The labels that identify one agent, as the Confluent families declare them."""


def per_agent(metric: str, by: str = "", extra: str = "") -> str:
    """One series per agent (and `by` label), whatever the number of exporter replicas."""
    labels = ", ".join(part for part in (AGENT, by) if part)
    return f"max by ({labels}) ({metric}{{{FILTER}{extra}}})"


def build() -> dashboard.Dashboard:
    """The Flink agents dashboard."""
    agents = per_agent("confluent_flink_agent_info")
    phases = per_agent("confluent_flink_agent_status_phase", "phase")
    running = per_agent("confluent_flink_agent_status_phase", extra=', phase="RUNNING"')
    unknown = per_agent("confluent_flink_agent_status_phase", "phase", ', phase!~"READY|RUNNING"')
    return (
        base(
            UID,
            "Lenses HQ / Confluent Flink agents",
            "Confluent Cloud Flink agents: counts by phase, model and tool, and one row per agent.",
        )
        .with_variable(datasource_variable())
        .with_variable(job_variable())
        .with_variable(
            label_variable(
                "tier",
                "Tier",
                f"label_values(confluent_flink_agent_info{{{JOB}}}, tier)",
                "The tier configured for the Confluent target (empty when none).",
            )
        )
        .with_variable(
            label_variable(
                "environment",
                "Confluent environment",
                f'label_values(confluent_flink_agent_info{{{JOB}, tier=~"$tier"}}, environment_id)',
                "Confluent Cloud environment id (env-...).",
            )
        )
        .with_row(row("Agents"))
        .with_panel(
            stat_panel(
                "Agents",
                "Flink agents in the selected environments.",
                "none",
                query(f"count({agents}) or vector(0)", instant=True),
                span=8,
            )
        )
        .with_panel(
            stat_panel(
                "Running",
                "Agents in phase RUNNING (running in a statement).",
                "none",
                query(f"count({running} == 1) or vector(0)", instant=True),
                steps=((None, GREEN),),
                span=8,
            )
        )
        .with_panel(
            stat_panel(
                "Other phases",
                "Agents in a phase other than READY or RUNNING.",
                "none",
                query(f"count({unknown} == 1) or vector(0)", instant=True),
                steps=((None, GREEN), (1, AMBER)),
                span=8,
            )
        )
        .with_panel(
            bargauge_panel(
                "Agents by phase",
                "How many agents are in each phase right now.",
                "none",
                query(f"sum by (phase) ({phases})", "{{phase}}", instant=True),
            )
        )
        .with_panel(
            bargauge_panel(
                "Agents by model",
                "How many agents use each model.",
                "none",
                query(
                    f"count by (model) ({per_agent('confluent_flink_agent_info', 'model')})",
                    "{{model}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            bargauge_panel(
                "Agents by tool",
                "How many agents can call each tool.",
                "none",
                query(
                    f"count by (tool) ({per_agent('confluent_flink_agent_tool_info', 'tool')})",
                    "{{tool}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            timeseries_panel(
                "Phases over time",
                "Agents in each phase over time.",
                "none",
                [query(f"sum by (phase) ({phases})", "{{phase}}")],
                span=16,
                stacked=True,
            )
        )
        .with_panel(
            bargauge_panel(
                "Phase changes",
                "Each agent's phase changes over the dashboard's time range (seen between two polls).",
                "none",
                query(per_agent("confluent_flink_agent_phase_changes_total"), "{{agent}}"),
                calc="delta",
            )
        )
        .with_row(row("Agent list"))
        .with_panel(
            table_panel(
                "Agents",
                "One row per agent: where it lives, its model and current phase, how many tools it has, and "
                "when it was created and last updated.",
                [
                    Column("info", per_agent("confluent_flink_agent_info", "model"), hidden=True),
                    Column("phase", f"{phases} == 1", hidden=True),
                    Column("Tools", per_agent("confluent_flink_agent_tools"), "none"),
                    Column(
                        "Created",
                        per_agent("confluent_flink_agent_created_timestamp_seconds") + " * 1000",
                        "dateTimeAsIso",
                    ),
                    Column(
                        "Updated",
                        per_agent("confluent_flink_agent_updated_timestamp_seconds") + " * 1000",
                        "dateTimeFromNow",
                    ),
                ],
                keep=[
                    "agent",
                    "environment_id",
                    "kafka_cluster_id",
                    "tier",
                    "model",
                    "phase",
                    "organization_id",
                ],
                rename={"environment_id": "environment", "kafka_cluster_id": "cluster"},
                height=12,
            )
        )
    )
