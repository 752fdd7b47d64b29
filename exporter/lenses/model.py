"""Lenses HQ environments, decoded tolerantly: unknown fields are ignored, a missing or wrongly typed field
becomes None and drops only the series it feeds."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from exporter.decode import Undecodable, as_count, as_label, as_mapping, as_number, as_timestamp

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

INVALID_FIELDS = (
    "agent_connected",
    "roundtrip_duration",
    *(key for section in SECTIONS for key in SECTION_FIELDS[section]),
)
"""The field names decoding may drop and count (`lenses_hq_exporter_invalid_fields_total{field}`) that are
known in advance; label values cut to size add their own (`name`, `capability`, `metadata`, ...)."""

LARGEST_INTEGER = 2**1023
"""Integers at least this large take the general path (`as_count`): `float()` may overflow on them."""

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
class Transitions:
    """The connectivity changes the exporter has seen for one environment since it first saw it (or since
    the exporter started): counts and when the last one was seen. `last_known` carries the last boolean HQ
    reported only while the environment's connectivity is unknown (otherwise the environment's own state
    is the last known one), so an environment that never changed compares equal to `NO_TRANSITIONS`."""

    disconnects: int = 0
    connects: int = 0
    changed_at: float | None = None
    last_known: bool | None = None

    def after(self, held: bool | None, connected: bool | None, now: float) -> Transitions:
        """These counts once an environment whose state held so far is `held` reports `connected` at `now`:
        a boolean other than the last known one is a change; unknown (None) changes nothing and forgets
        nothing (connected, unknown, disconnected is one disconnect)."""
        last_known = held if held is not None else self.last_known
        if connected is None:
            return self if self.last_known == last_known else replace(self, last_known=last_known)
        base = self if self.last_known is None else replace(self, last_known=None)
        if last_known is None or connected == last_known:
            return base
        if connected:
            return Transitions(base.disconnects, base.connects + 1, now)
        return Transitions(base.disconnects + 1, base.connects, now)


NO_TRANSITIONS = Transitions()


KafkaConnection = tuple[str, str, str]
"""A Kafka connection's name, auth type and whether it overrides the agent's brokers (`true`/`false`)."""

MAX_CONNECTION_TEXT = 256
"""A connection name or auth type longer than this is not one (label values stay bounded)."""


def decode_kafka_connection(raw: Any) -> KafkaConnection | None:
    """Name, auth type (the key of the `auth` object, `plaintext` for an empty one) and whether brokers are
    overridden; None for an item without a usable name. Addresses and auth settings are never kept."""
    if not isinstance(raw, dict):
        return None
    name = as_label(raw.get("name"), "kafka_connection")
    if not name or len(name) > MAX_CONNECTION_TEXT:
        return None
    auth = raw.get("auth")
    auth_type = ""
    if isinstance(auth, dict):
        kinds = sorted(key for key in auth if isinstance(key, str) and len(key) <= MAX_CONNECTION_TEXT)
        auth_type = kinds[0] if kinds else "plaintext"
    brokers = raw.get("override_broker_addresses")
    overridden = isinstance(brokers, list) and any(
        isinstance(address, str) and address for address in brokers
    )
    return name, auth_type, "true" if overridden else "false"


@dataclass(frozen=True, slots=True)
class Environment:
    """One HQ environment as the exporter needs it. `agent_connected` is None when HQ reports no boolean;
    `invalid_fields` names the fields dropped while decoding (missing where expected, or out of range)."""

    name: str
    tier: str
    display_name: str
    id: str
    lrn: str
    created_at: float | None
    agent_connected: bool | None
    agent: Agent | None
    metadata: dict[str, str] = field(default_factory=dict)
    kafka_connections: int | None = None
    kafka_connection_details: tuple[KafkaConnection, ...] = ()
    """Each Kafka connection (when that poll is on), sorted by name."""
    invalid_fields: tuple[str, ...] = ()
    transitions: Transitions = NO_TRANSITIONS


def _section(raw: Any, name: str, invalid: list[str]) -> Section | None:
    block = raw if isinstance(raw, dict) else None
    if block is None:
        return None
    numbers: list[float | None] = []
    for key in SECTION_FIELDS[name]:
        value: Any = block.get(key)
        kind = type(value)
        # The common case first: a plain non-negative JSON number (NaN fails the comparison).
        if (kind is int and 0 <= value < LARGEST_INTEGER) or (kind is float and 0.0 <= value < math.inf):
            numbers.append(float(value))
            continue
        number, negative = as_count(value)
        numbers.append(number)
        if negative:
            invalid.append(key)
    values = tuple(numbers)
    version = as_label(block.get("version"), "kafka_version", invalid) if name == "kafka" else None
    return Section(values, as_timestamp(block.get("updated_at")), version)


def _capabilities(raw: Any, invalid: list[str]) -> dict[str, bool]:
    """At most MAX_CAPABILITIES, each name a label value; names equal once made one are kept once."""
    capabilities: dict[str, bool] = {}
    for key, value in as_mapping(raw).items():
        if not isinstance(value, bool):
            continue
        if len(capabilities) >= MAX_CAPABILITIES:
            invalid.append("capabilities")
            break
        capabilities.setdefault(as_label(key, "capability", invalid) or "", value)
    return capabilities


def _agent(raw: Any, invalid: list[str]) -> Agent | None:
    if not isinstance(raw, dict):
        return None
    identity = as_mapping(raw.get("agent"))
    metrics = as_mapping(raw.get("metrics"))
    sections = {
        name: section
        for name in SECTIONS
        if (section := _section(metrics.get(name), name, invalid)) is not None
    }
    roundtrip, negative = as_count(raw.get("roundtrip_duration"))
    if negative:
        invalid.append("roundtrip_duration")
    return Agent(
        updated_at=as_timestamp(raw.get("updated_at")),
        roundtrip_duration=roundtrip,
        hostname=as_label(identity.get("hostname"), "hostname", invalid),
        version=as_label(identity.get("version"), "version", invalid),
        protocol_version=_version_text(identity.get("protocol_version"), invalid),
        capabilities=_capabilities(identity.get("capabilities"), invalid),
        sections=sections,
    )


def _version_text(value: Any, invalid: list[str]) -> str | None:
    if isinstance(value, str):
        return as_label(value, "protocol_version", invalid)
    number = as_number(value)
    return None if number is None else (str(int(number)) if number.is_integer() else str(number))


def _metadata(raw: Any, keys: Collection[str], invalid: list[str]) -> dict[str, str]:
    """Only the metadata the exporter exports (`keys`, the allowlist): the rest is not kept."""
    metadata = as_mapping(raw)
    kept: dict[str, str] = {}
    for key in keys:
        value = as_label(metadata.get(key), "metadata", invalid)
        if value is not None:
            kept[key] = value
    return kept


def decode_environment(raw: Any, metadata_keys: Collection[str] = ()) -> Environment:
    """Decode one environment object; raises `InvalidEnvironment` only when it has no usable name.

    Only the metadata in `metadata_keys` is kept. Every text that becomes a label value is made fit for one
    (`as_label`); the fields dropped (missing where expected, out of range) or cut to fit are named in the
    environment's `invalid_fields`."""
    if isinstance(raw, Undecodable):
        raise InvalidEnvironment(f"environment is {raw.reason}")
    if not isinstance(raw, dict):
        raise InvalidEnvironment("environment is not a JSON object")
    status = as_mapping(raw.get("status"))
    connected = status.get("agent_connected")
    invalid: list[str] = [] if isinstance(connected, bool) else ["agent_connected"]
    name = as_label(raw.get("name"), "name", invalid)
    if not name:
        raise InvalidEnvironment("environment has no name")
    return Environment(
        name=name,
        tier=as_label(raw.get("tier"), "tier", invalid) or "",
        display_name=as_label(raw.get("display_name"), "display_name", invalid) or "",
        id=as_label(raw.get("id"), "id", invalid) or "",
        lrn=as_label(raw.get("lrn"), "lrn", invalid) or "",
        created_at=as_timestamp(raw.get("created_at")),
        agent_connected=connected if isinstance(connected, bool) else None,
        agent=_agent(status.get("agent"), invalid),
        metadata=_metadata(raw.get("metadata"), metadata_keys, invalid),
        invalid_fields=tuple(invalid),
    )


def with_transitions(environment: Environment, held: Environment | None, now: float) -> Environment:
    """The environment carrying the connectivity changes counted so far (by the held state it replaces),
    plus one if its connectivity differs from the last known one."""
    if held is None:
        return (
            environment
            if environment.transitions == NO_TRANSITIONS
            else replace(environment, transitions=NO_TRANSITIONS)
        )
    transitions = held.transitions.after(held.agent_connected, environment.agent_connected, now)
    if transitions == environment.transitions:
        return environment
    return replace(environment, transitions=transitions)
