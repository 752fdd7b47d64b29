"""The Confluent Flink agent metric families (placeholder until the wing lands)."""

from __future__ import annotations

from exporter.store import FamilyGroup

COMMON_LABELS = ("organization_id", "environment_id", "kafka_cluster_id", "agent", "tier")

GROUP: FamilyGroup[object] = FamilyGroup(COMMON_LABELS, ())
