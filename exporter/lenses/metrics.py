"""The Lenses metric families, declared as data: name, help, own labels and how to read them off an
environment. Every series also carries `environment`, `tier` and `target` (the configured HQ's name), so two
HQs with an environment of the same name never merge."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter

from exporter.config import ROUNDTRIP_UNITS as ROUNDTRIP_UNITS
from exporter.config import metadata_label_name
from exporter.exposition.families import FamilyGroup, Inputs, Reader, Sample, counter, gauge, one
from exporter.lenses.model import SECTION_FIELDS, SECTIONS, Environment

COMMON_LABELS = ("environment", "tier", "target")


# What each family reads of an environment (`Family.inputs`): an update renders only the families whose
# inputs changed. Families reading the same fields share one function.


def _agent_inputs(*fields: str) -> Inputs[Environment]:
    read = attrgetter(*fields)

    def inputs(environment: Environment) -> object:
        agent = environment.agent
        return agent and read(agent)

    return inputs


def _section_inputs(section: str) -> Inputs[Environment]:
    def inputs(environment: Environment) -> object:
        agent = environment.agent
        block = agent.sections.get(section) if agent else None
        return block and (block.values, block.version)

    return inputs


def _sections_updated_inputs(environment: Environment) -> object:
    agent = environment.agent
    return agent and tuple((name, block.updated_at) for name, block in agent.sections.items())


_IDENTITY = attrgetter("display_name", "id", "lrn")
_CREATED = attrgetter("created_at")
_CONNECTED = attrgetter("agent_connected")
_TRANSITIONS = attrgetter("transitions")
_AGENT_IDENTITY = _agent_inputs("hostname", "version", "protocol_version")
_AGENT_CAPABILITIES = _agent_inputs("capabilities")
_AGENT_ROUNDTRIP = _agent_inputs("roundtrip_duration")
_AGENT_UPDATED = _agent_inputs("updated_at")
_SECTION_INPUTS = {section: _section_inputs(section) for section in SECTIONS}
_CONNECTIONS = attrgetter("kafka_connections")
_CONNECTION_DETAILS = attrgetter("kafka_connection_details")
_METADATA = attrgetter("metadata")


def _section_value(section: str, key: str) -> Reader[Environment]:
    index = SECTION_FIELDS[section].index(key)

    def read(environment: Environment) -> Iterable[Sample]:
        agent = environment.agent
        block = agent.sections.get(section) if agent else None
        return one(block.values[index] if block else None)

    return read


def _info(environment: Environment) -> Iterable[Sample]:
    yield (environment.display_name, environment.id, environment.lrn), 1


def _agent_info(environment: Environment) -> Iterable[Sample]:
    agent = environment.agent
    if agent is not None:
        yield (agent.hostname or "", agent.version or "", agent.protocol_version or ""), 1


def _capabilities(environment: Environment) -> Iterable[Sample]:
    agent = environment.agent
    if agent is not None:
        for capability, enabled in sorted(agent.capabilities.items()):
            yield (capability,), 1 if enabled else 0


def _roundtrip(factor: float) -> Reader[Environment]:
    def read(environment: Environment) -> Iterable[Sample]:
        agent = environment.agent
        duration = agent.roundtrip_duration if agent else None
        return one(None if duration is None else duration * factor)

    return read


def _kafka_info(environment: Environment) -> Iterable[Sample]:
    agent = environment.agent
    kafka = agent.sections.get("kafka") if agent else None
    if kafka is not None and kafka.version is not None:
        yield (kafka.version,), 1


def _sections_updated(environment: Environment) -> Iterable[Sample]:
    agent = environment.agent
    if agent is not None:
        for name in SECTIONS:
            block = agent.sections.get(name)
            if block is not None and block.updated_at is not None:
                yield (name,), block.updated_at


def _metadata(keys: Sequence[str]) -> Reader[Environment]:
    def read(environment: Environment) -> Iterable[Sample]:
        yield tuple(environment.metadata.get(key, "") for key in keys), 1

    return read


def build_group(
    roundtrip_duration_unit: str = "ns",
    metadata_labels: Sequence[str] = (),
    keep: Callable[[str], bool] = lambda name: True,
) -> FamilyGroup[Environment]:
    """The families for one configuration (the round-trip unit and the metadata allowlist change them);
    only those `keep` accepts, so a denied family is never rendered."""
    families = [
        gauge(
            "lenses_environment_info",
            "Environment identity; value 1.",
            _info,
            ("display_name", "id", "lrn"),
            inputs=_IDENTITY,
        ),
        gauge(
            "lenses_environment_created_timestamp_seconds",
            "When the environment was created (Unix seconds).",
            lambda e: one(e.created_at),
            inputs=_CREATED,
        ),
        gauge(
            "lenses_environment_agent_connected",
            "1 when HQ reports the environment's agent connected, 0 when it reports it disconnected; "
            "absent when HQ reports no boolean (unknown is not disconnected).",
            lambda e: () if e.agent_connected is None else (((), 1 if e.agent_connected else 0),),
            inputs=_CONNECTED,
        ),
        counter(
            "lenses_environment_agent_disconnects_total",
            "Changes from connected to disconnected the exporter saw (live stream or listings) since it "
            "first saw the environment.",
            lambda e: (((), e.transitions.disconnects),),
            inputs=_TRANSITIONS,
        ),
        counter(
            "lenses_environment_agent_connects_total",
            "Changes from disconnected to connected the exporter saw (live stream or listings) since it "
            "first saw the environment.",
            lambda e: (((), e.transitions.connects),),
            inputs=_TRANSITIONS,
        ),
        gauge(
            "lenses_environment_agent_last_change_timestamp_seconds",
            "When the exporter saw the agent's last connectivity change (Unix seconds); absent until one.",
            lambda e: one(e.transitions.changed_at),
            inputs=_TRANSITIONS,
        ),
        gauge(
            "lenses_environment_agent_info",
            "The agent's hostname, version and protocol version; value 1.",
            _agent_info,
            ("hostname", "version", "protocol_version"),
            inputs=_AGENT_IDENTITY,
        ),
        gauge(
            "lenses_environment_agent_capability",
            "1 when the agent reports the capability enabled, 0 when disabled.",
            _capabilities,
            ("capability",),
            inputs=_AGENT_CAPABILITIES,
        ),
        gauge(
            "lenses_environment_agent_roundtrip_seconds",
            "Round-trip time between HQ and the agent.",
            _roundtrip(ROUNDTRIP_UNITS[roundtrip_duration_unit]),
            inputs=_AGENT_ROUNDTRIP,
        ),
        gauge(
            "lenses_environment_agent_updated_timestamp_seconds",
            "When the agent last reported (Unix seconds).",
            lambda e: one(e.agent.updated_at if e.agent else None),
            inputs=_AGENT_UPDATED,
        ),
        gauge(
            "lenses_environment_kafka_info",
            "The Kafka version the agent reports; value 1.",
            _kafka_info,
            ("version",),
            inputs=_SECTION_INPUTS["kafka"],
        ),
        gauge(
            "lenses_environment_kafka_brokers",
            "Kafka brokers.",
            _section_value("kafka", "num_brokers"),
            inputs=_SECTION_INPUTS["kafka"],
        ),
        gauge(
            "lenses_environment_topics",
            "Topics.",
            _section_value("data", "num_topics"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_partitions",
            "Partitions.",
            _section_value("data", "num_partitions"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_schemas",
            "Schemas.",
            _section_value("data", "num_schemas"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_policies",
            "Data policies.",
            _section_value("data", "num_policies"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_topic_data_bytes",
            "Bytes of data held in all topics.",
            _section_value("data", "topic_data_total_bytes"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_data_in_bytes_per_second",
            "Bytes per second produced into the cluster.",
            _section_value("data", "data_in_bytes_per_sec"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_data_out_bytes_per_second",
            "Bytes per second consumed from the cluster.",
            _section_value("data", "data_out_bytes_per_sec"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_data_in_messages_per_second",
            "Messages per second produced into the cluster.",
            _section_value("data", "data_in_messages_per_sec"),
            inputs=_SECTION_INPUTS["data"],
        ),
        gauge(
            "lenses_environment_consumers",
            "Consumer applications.",
            _section_value("apps", "num_consumers"),
            inputs=_SECTION_INPUTS["apps"],
        ),
        gauge(
            "lenses_environment_other_apps",
            "Applications other than consumers.",
            _section_value("apps", "num_other_apps"),
            inputs=_SECTION_INPUTS["apps"],
        ),
        gauge(
            "lenses_environment_connect_clusters",
            "Kafka Connect clusters.",
            _section_value("connect", "num_clusters"),
            inputs=_SECTION_INPUTS["connect"],
        ),
        gauge(
            "lenses_environment_connectors",
            "Kafka Connect connectors.",
            _section_value("connect", "num_connectors"),
            inputs=_SECTION_INPUTS["connect"],
        ),
        gauge(
            "lenses_environment_issues",
            "Issues the agent reports.",
            _section_value("other", "num_issues"),
            inputs=_SECTION_INPUTS["other"],
        ),
        gauge(
            "lenses_environment_metrics_updated_timestamp_seconds",
            "When each metrics section was last updated (Unix seconds).",
            _sections_updated,
            ("section",),
            inputs=_sections_updated_inputs,
        ),
        gauge(
            "lenses_environment_kafka_connections",
            "Kafka connections defined for the environment (when that poll is switched on).",
            lambda e: one(None if e.kafka_connections is None else float(e.kafka_connections)),
            inputs=_CONNECTIONS,
        ),
    ]
    families.append(
        gauge(
            "lenses_environment_kafka_connection_info",
            "Each Kafka connection defined for the environment: its auth type and whether it overrides the "
            "agent's brokers (when that poll is switched on); value 1.",
            lambda e: ((details, 1) for details in e.kafka_connection_details),
            ("connection", "auth_type", "brokers_overridden"),
            inputs=_CONNECTION_DETAILS,
        )
    )
    if metadata_labels:
        families.append(
            gauge(
                "lenses_environment_metadata_info",
                "Allow-listed environment metadata as labels; value 1.",
                _metadata(tuple(metadata_labels)),
                tuple(metadata_label_name(key) for key in metadata_labels),
                inputs=_METADATA,
            )
        )
    return FamilyGroup(COMMON_LABELS, tuple(family for family in families if keep(family.name)))


FAMILY_NAMES = tuple(family.name for family in build_group(metadata_labels=("key",)).families)
"""Every Lenses family name (what `metrics.allow` / `metrics.deny` may name)."""


def common_values(environment: Environment, target: str) -> tuple[str, str, str]:
    """The `environment`, `tier` and `target` label values."""
    return environment.name, environment.tier, target
