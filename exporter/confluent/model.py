"""Confluent Flink agents, decoded tolerantly: unknown fields are ignored, a missing or wrongly typed field
becomes None and drops only the series it feeds. Free text (prompt, description, properties) is not kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from exporter.decode import Undecodable, as_label, as_mapping, as_text, as_timestamp

MAX_NAME_LENGTH = 255
MAX_PHASE_LENGTH = 64
MAX_TOOL_LENGTH = 255
MAX_TOOLS = 128
"""Tools kept per agent (each one is a series); more are cut and counted."""

_CLUSTER_IN_SELF = re.compile(r"/databases/([^/?#]+)/agents(?:[/?#]|$)")


class InvalidAgent(ValueError):
    """An object that cannot be an agent at all (not an object, or no usable name)."""


@dataclass(frozen=True, slots=True)
class FlinkAgent:
    """One Flink agent as the exporter needs it."""

    name: str
    kafka_cluster_id: str
    uid: str
    model: str
    phase: str | None
    tools: tuple[str, ...] | None
    created_at: float | None
    updated_at: float | None
    phase_changes: int = 0
    """Phase changes seen between polls since the agent was first seen (set by the poller)."""
    labels: tuple[tuple[str, str], ...] = ()
    """`metadata.labels` entries with a string value, in upstream order."""

    @property
    def key(self) -> str:
        """The store key: names are unique per environment, the cluster keeps two databases apart."""
        return f"{self.kafka_cluster_id}/{self.name}"


def kafka_cluster_of(self_url: str | None) -> str:
    """The Kafka cluster id from `metadata.self` (`.../databases/{lkc}/agents/{name}`); '' when absent."""
    if not self_url:
        return ""
    found = _CLUSTER_IN_SELF.search(self_url)
    return found.group(1) if found else ""


def _phase(raw: Any, cuts: list[str] | None) -> str | None:
    phase = as_text(as_mapping(raw).get("phase"))
    if not phase or len(phase) > MAX_PHASE_LENGTH:
        return None
    return as_label(phase, "phase", cuts)


def _tools(raw: Any, cuts: list[str] | None) -> tuple[str, ...] | None:
    """At most MAX_TOOLS distinct tool names, each a label value."""
    if not isinstance(raw, list):
        return None
    unique: dict[str, None] = {}
    for tool in raw:
        if isinstance(tool, str) and tool and len(tool) <= MAX_TOOL_LENGTH:
            if len(unique) >= MAX_TOOLS:
                if cuts is not None:
                    cuts.append("tools")
                break
            unique[as_label(tool, "tool", cuts) or ""] = None
    return tuple(unique)


_NO_NAME = Undecodable("not a JSON object with a name")
_KEPT_METADATA = ("self", "uid", "created_at", "updated_at", "labels")  # labels: for the allowlist
_KEPT_TOOLS = 4 * MAX_TOOLS  # enough that a list over MAX_TOOLS distinct tools is still seen as one


def compact_agent(raw: Any) -> Any:
    """What `decode_agent` reads of a raw agent, and nothing else. A listing's raw agents are held until its
    last page has arrived: they must not hold free text and unbounded lists that are never read, nor a
    dict for each of a million `{}` (an object without a name becomes one shared `Undecodable`)."""
    if isinstance(raw, Undecodable):
        return raw
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        return _NO_NAME
    metadata = as_mapping(raw.get("metadata"))
    spec = as_mapping(raw.get("spec"))
    tools = spec.get("tools")
    return {
        "name": raw["name"],
        "metadata": {key: metadata[key] for key in _KEPT_METADATA if key in metadata},
        "spec": {
            "model": spec.get("model"),
            "tools": tools[:_KEPT_TOOLS] if isinstance(tools, list) else tools,
        },
        "status": {"phase": as_mapping(raw.get("status")).get("phase")},
    }


def decode_agent(raw: Any, cuts: list[str] | None = None) -> FlinkAgent:
    """Decode one agent object; raises `InvalidAgent` only when it has no usable name. Every text that
    becomes a label value is made fit for one (`as_label`); the fields that had to be changed or cut are
    appended to `cuts`."""
    if isinstance(raw, Undecodable):
        raise InvalidAgent(f"agent is {raw.reason}")
    if not isinstance(raw, dict):
        raise InvalidAgent("agent is not a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidAgent("agent has no name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidAgent(f"agent name longer than {MAX_NAME_LENGTH} characters")
    metadata = as_mapping(raw.get("metadata"))
    spec = as_mapping(raw.get("spec"))
    return FlinkAgent(
        name=as_label(name, "name", cuts) or name,
        kafka_cluster_id=as_label(kafka_cluster_of(as_text(metadata.get("self"))), "kafka_cluster_id", cuts)
        or "",
        uid=as_label(metadata.get("uid"), "uid", cuts) or "",
        model=as_label(spec.get("model"), "model", cuts) or "",
        phase=_phase(raw.get("status"), cuts),
        tools=_tools(spec.get("tools"), cuts),
        created_at=as_timestamp(metadata.get("created_at")),
        updated_at=as_timestamp(metadata.get("updated_at")),
        labels=_labels(metadata.get("labels")),
    )


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (key, label)
        for key, value in as_mapping(raw).items()
        if (label := as_label(value, "labels")) is not None
    )
