"""Confluent Flink agents, decoded tolerantly: unknown fields are ignored, a missing or wrongly typed field
becomes None and drops only the series it feeds. Free text (prompt, description, properties) is not kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from exporter.decode import as_mapping, as_text, as_timestamp

MAX_NAME_LENGTH = 255
MAX_PHASE_LENGTH = 64
MAX_TOOL_LENGTH = 255

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


def _phase(raw: Any) -> str | None:
    phase = as_text(as_mapping(raw).get("phase"))
    if not phase or len(phase) > MAX_PHASE_LENGTH:
        return None
    return phase


def _tools(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list):
        return None
    unique = dict.fromkeys(
        tool for tool in raw if isinstance(tool, str) and tool and len(tool) <= MAX_TOOL_LENGTH
    )
    return tuple(unique)


def decode_agent(raw: Any) -> FlinkAgent:
    """Decode one agent object; raises `InvalidAgent` only when it has no usable name."""
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
        name=name,
        kafka_cluster_id=kafka_cluster_of(as_text(metadata.get("self"))),
        uid=as_text(metadata.get("uid")) or "",
        model=as_text(spec.get("model")) or "",
        phase=_phase(raw.get("status")),
        tools=_tools(spec.get("tools")),
        created_at=as_timestamp(metadata.get("created_at")),
        updated_at=as_timestamp(metadata.get("updated_at")),
        labels=_labels(metadata.get("labels")),
    )


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((key, value) for key, value in as_mapping(raw).items() if isinstance(value, str))
