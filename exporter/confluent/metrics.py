"""The Confluent Flink agent metric families, declared as data: name, help, own labels and how to read them
off an agent. Every series also carries `organization_id`, `environment_id`, `kafka_cluster_id`, `agent`
and `tier`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from exporter.config import ConfluentTarget, agent_label_name
from exporter.confluent.model import FlinkAgent
from exporter.exposition.families import Family, FamilyGroup, Reader, Sample, counter, gauge, one

COMMON_LABELS = ("organization_id", "environment_id", "kafka_cluster_id", "agent", "tier")

KNOWN_PHASES = ("READY", "RUNNING")
"""Phases that always have a series (0 or 1), so `== 0` alerts work; another phase adds its own series."""


def _info(agent: FlinkAgent) -> Iterable[Sample]:
    yield (agent.model, agent.uid), 1


def _phase(agent: FlinkAgent) -> Iterable[Sample]:
    if agent.phase is None:
        return
    for phase in KNOWN_PHASES:
        yield (phase,), 1 if agent.phase == phase else 0
    if agent.phase not in KNOWN_PHASES:
        yield (agent.phase,), 1


def _tool_count(agent: FlinkAgent) -> Iterable[Sample]:
    return one(None if agent.tools is None else float(len(agent.tools)))


def _tool_info(agent: FlinkAgent) -> Iterable[Sample]:
    for tool in agent.tools or ():
        yield (tool,), 1


def _labels(keys: Sequence[str]) -> Reader[FlinkAgent]:
    def read(agent: FlinkAgent) -> Iterable[Sample]:
        values = dict(agent.labels)
        yield tuple(values.get(key, "") for key in keys), 1

    return read


def build_group(
    label_keys: Sequence[str] = (), keep: Callable[[str], bool] = lambda name: True
) -> FamilyGroup[FlinkAgent]:
    """The families for one configuration (the `metadata.labels` allowlist adds one); only those `keep`
    accepts, so a denied family is never rendered."""
    families = [*_FAMILIES]
    if label_keys:
        families.append(
            gauge(
                "confluent_flink_agent_labels_info",
                "Allow-listed agent metadata labels as labels; value 1.",
                _labels(tuple(label_keys)),
                tuple(agent_label_name(key) for key in label_keys),
            )
        )
    return FamilyGroup(COMMON_LABELS, tuple(family for family in families if keep(family.name)))


_FAMILIES: tuple[Family[FlinkAgent], ...] = (
    gauge(
        "confluent_flink_agent_info",
        "Flink agent identity: the model it uses and its uid; value 1.",
        _info,
        ("model", "uid"),
    ),
    gauge(
        "confluent_flink_agent_status_phase",
        "1 for the agent's current phase, 0 for the other known phases (READY, RUNNING).",
        _phase,
        ("phase",),
    ),
    gauge("confluent_flink_agent_tools", "Tools available to the agent.", _tool_count),
    gauge(
        "confluent_flink_agent_tool_info",
        "One series per tool available to the agent; value 1.",
        _tool_info,
        ("tool",),
    ),
    gauge(
        "confluent_flink_agent_created_timestamp_seconds",
        "When the agent was created (Unix seconds).",
        lambda agent: one(agent.created_at),
    ),
    gauge(
        "confluent_flink_agent_updated_timestamp_seconds",
        "When the agent was last updated (Unix seconds).",
        lambda agent: one(agent.updated_at),
    ),
    counter(
        "confluent_flink_agent_phase_changes_total",
        "Changes of the agent's phase seen between two polls since the exporter first saw the agent.",
        lambda agent: (((), agent.phase_changes),),
    ),
)

GROUP = build_group()
"""The families of a configuration with no labels allowlist and no family filter."""

FAMILY_NAMES = tuple(family.name for family in build_group(("key",)).families)
"""Every Confluent family name (what `metrics.allow` / `metrics.deny` may name)."""


def common_values(target: ConfluentTarget, agent: FlinkAgent) -> tuple[str, str, str, str, str]:
    """The common label values: the target's organization, environment and tier, the agent's cluster and
    name."""
    return target.organization_id, target.environment_id, agent.kafka_cluster_id, agent.name, target.tier
