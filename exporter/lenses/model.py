"""Lenses HQ environments, decoded tolerantly: unknown fields are ignored, a missing or wrongly typed field
becomes None and drops only the series it feeds."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from exporter.decode import Undecodable, as_label, as_mapping, as_number, as_timestamp

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

MAX_CAPABILITIES = 64
"""Capabilities kept per agent (each one is a series); more are cut and counted."""


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


def _section(raw: Any, name: str, cuts: list[str] | None) -> Section | None:
    block = raw if isinstance(raw, dict) else None
    if block is None:
        return None
    values = tuple([as_number(block.get(key)) for key in SECTION_FIELDS[name]])
    version = as_label(block.get("version"), "kafka_version", cuts) if name == "kafka" else None
    return Section(values, as_timestamp(block.get("updated_at")), version)


def _capabilities(raw: Any, cuts: list[str] | None) -> dict[str, bool]:
    """At most MAX_CAPABILITIES, each name a label value; names equal once made one are kept once."""
    capabilities: dict[str, bool] = {}
    for key, value in as_mapping(raw).items():
        if not isinstance(value, bool):
            continue
        if len(capabilities) >= MAX_CAPABILITIES:
            if cuts is not None:
                cuts.append("capabilities")
            break
        capabilities.setdefault(as_label(key, "capability", cuts) or "", value)
    return capabilities


def _agent(raw: Any, cuts: list[str] | None) -> Agent | None:
    if not isinstance(raw, dict):
        return None
    identity = as_mapping(raw.get("agent"))
    metrics = as_mapping(raw.get("metrics"))
    sections = {
        name: section for name in SECTIONS if (section := _section(metrics.get(name), name, cuts)) is not None
    }
    return Agent(
        updated_at=as_timestamp(raw.get("updated_at")),
        roundtrip_duration=as_number(raw.get("roundtrip_duration")),
        hostname=as_label(identity.get("hostname"), "hostname", cuts),
        version=as_label(identity.get("version"), "version", cuts),
        protocol_version=_version_text(identity.get("protocol_version"), cuts),
        capabilities=_capabilities(identity.get("capabilities"), cuts),
        sections=sections,
    )


def _version_text(value: Any, cuts: list[str] | None) -> str | None:
    if isinstance(value, str):
        return as_label(value, "protocol_version", cuts)
    number = as_number(value)
    return None if number is None else (str(int(number)) if number.is_integer() else str(number))


def _metadata(raw: Any, keys: Collection[str], cuts: list[str] | None) -> dict[str, str]:
    """Only the metadata the exporter exports (`keys`, the allowlist): the rest is not kept."""
    metadata = as_mapping(raw)
    kept: dict[str, str] = {}
    for key in keys:
        value = as_label(metadata.get(key), "metadata", cuts)
        if value is not None:
            kept[key] = value
    return kept


def decode_environment(
    raw: Any, metadata_keys: Collection[str] = (), cuts: list[str] | None = None
) -> Environment:
    """Decode one environment object; raises `InvalidEnvironment` only when it has no usable name.

    Only the metadata in `metadata_keys` is kept. Every text that becomes a label value is made fit for one
    (`as_label`); the fields that had to be changed or cut are appended to `cuts`."""
    if isinstance(raw, Undecodable):
        raise InvalidEnvironment(f"environment is {raw.reason}")
    if not isinstance(raw, dict):
        raise InvalidEnvironment("environment is not a JSON object")
    name = as_label(raw.get("name"), "name", cuts)
    if not name:
        raise InvalidEnvironment("environment has no name")
    status = as_mapping(raw.get("status"))
    return Environment(
        name=name,
        tier=as_label(raw.get("tier"), "tier", cuts) or "",
        display_name=as_label(raw.get("display_name"), "display_name", cuts) or "",
        id=as_label(raw.get("id"), "id", cuts) or "",
        lrn=as_label(raw.get("lrn"), "lrn", cuts) or "",
        created_at=as_timestamp(raw.get("created_at")),
        agent_connected=status.get("agent_connected") is True,
        agent=_agent(status.get("agent"), cuts),
        metadata=_metadata(raw.get("metadata"), metadata_keys, cuts),
    )
