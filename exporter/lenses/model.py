"""Lenses HQ environments, decoded tolerantly: unknown fields are ignored, a missing or wrongly typed field
becomes None and drops only the series it feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exporter.decode import Undecodable, as_mapping, as_number, as_text, as_timestamp

SECTIONS = ("kafka", "data", "apps", "connect", "other")

SECTION_FIELDS = {
    "kafka": ("num_brokers",),
    "data": (
        "num_topics",
        "num_partitions",
        "num_schemas",
        "num_policies",
        "topic_data_total_bytes",
        "data_in_bytes_per_sec",
        "data_out_bytes_per_sec",
        "data_in_messages_per_sec",
    ),
    "apps": ("num_consumers", "num_other_apps"),
    "connect": ("num_clusters", "num_connectors"),
    "other": ("num_issues",),
}
"""The numeric fields of each metrics block that the exporter reads; other fields are ignored."""


class InvalidEnvironment(ValueError):
    """An object that cannot be an environment at all (no usable name)."""


@dataclass(frozen=True, slots=True)
class Section:
    """One block of `status.agent.metrics`: its numeric fields in `SECTION_FIELDS` order (None where missing
    or not a number; a tuple, which is a fraction of a dict's memory at fleet scale), its `updated_at`, and
    Kafka's version."""

    values: tuple[float | None, ...]
    updated_at: float | None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    """`status.agent`: the connected agent's identity, round trip and metrics blocks."""

    updated_at: float | None
    roundtrip_duration: float | None
    hostname: str | None
    version: str | None
    protocol_version: str | None
    capabilities: dict[str, bool]
    sections: dict[str, Section]


@dataclass(frozen=True, slots=True)
class Environment:
    """One HQ environment as the exporter needs it."""

    name: str
    tier: str
    display_name: str
    id: str
    lrn: str
    created_at: float | None
    agent_connected: bool
    agent: Agent | None
    metadata: dict[str, str] = field(default_factory=dict)
    kafka_connections: int | None = None


def _section(raw: Any, name: str) -> Section | None:
    block = raw if isinstance(raw, dict) else None
    if block is None:
        return None
    values = tuple([as_number(block.get(key)) for key in SECTION_FIELDS[name]])
    version = as_text(block.get("version")) if name == "kafka" else None
    return Section(values, as_timestamp(block.get("updated_at")), version)


def _agent(raw: Any) -> Agent | None:
    if not isinstance(raw, dict):
        return None
    identity = as_mapping(raw.get("agent"))
    capabilities = {
        str(key): value
        for key, value in as_mapping(identity.get("capabilities")).items()
        if isinstance(value, bool)
    }
    metrics = as_mapping(raw.get("metrics"))
    sections = {
        name: section for name in SECTIONS if (section := _section(metrics.get(name), name)) is not None
    }
    return Agent(
        updated_at=as_timestamp(raw.get("updated_at")),
        roundtrip_duration=as_number(raw.get("roundtrip_duration")),
        hostname=as_text(identity.get("hostname")),
        version=as_text(identity.get("version")),
        protocol_version=_version_text(identity.get("protocol_version")),
        capabilities=capabilities,
        sections=sections,
    )


def _version_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    number = as_number(value)
    return None if number is None else (str(int(number)) if number.is_integer() else str(number))


def decode_environment(raw: Any) -> Environment:
    """Decode one environment object; raises `InvalidEnvironment` only when it has no usable name."""
    if isinstance(raw, Undecodable):
        raise InvalidEnvironment(f"environment is {raw.reason}")
    if not isinstance(raw, dict):
        raise InvalidEnvironment("environment is not a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidEnvironment("environment has no name")
    status = as_mapping(raw.get("status"))
    metadata = {str(k): v for k, v in as_mapping(raw.get("metadata")).items() if isinstance(v, str)}
    return Environment(
        name=name,
        tier=as_text(raw.get("tier")) or "",
        display_name=as_text(raw.get("display_name")) or "",
        id=as_text(raw.get("id")) or "",
        lrn=as_text(raw.get("lrn")) or "",
        created_at=as_timestamp(raw.get("created_at")),
        agent_connected=status.get("agent_connected") is True,
        agent=_agent(status.get("agent")),
        metadata=metadata,
    )
