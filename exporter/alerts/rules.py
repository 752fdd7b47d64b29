"""The alert rules as data: one function of `AlertSettings` (the job selector and every threshold), written
out by `render`; the rules themselves are `exporter.alerts.groups`.

The committed rule file is `render(AlertSettings())`; a deployment with another job name or other thresholds
renders its own with `python -m alerts.generate --job-selector ... --set name=value`, so a threshold lives in
exactly one place and the rules cannot drift from the tests that cover them.

Every expression aggregates away `instance` (`max by (target, environment, tier)` and the like): two exporter
replicas scraped under one job, or several shards, yield one alert per environment, agent or target; `target`
keeps two HQs' environments of the same name apart. With `cluster_label` set (as node-mixin's
`clusterLabel`), every aggregation keeps that label too, for a global ruler over several clusters.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import yaml

from exporter.alerts.groups import RuleGroups

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")

RUNBOOK_URL = "https://github.com/lenses-hq-exporter/lenses-hq-exporter/blob/main/docs/runbook.md"

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class AlertSettings:
    """The job selector and every threshold of the rules; the defaults are what the committed file holds."""

    job_selector: str = 'job="lenses-hq-exporter"'
    runbook_url: str = RUNBOOK_URL
    production_tier: str = "production"
    agent_disconnected_for: str = "10m"
    agent_connectivity_unknown_for: str = "10m"
    agent_flapping_disconnects: float = 3
    agent_flapping_window: str = "30m"
    agent_flapping_for: str = "1m"
    agent_metrics_stale_seconds: float = 900
    agent_metrics_stale_for: str = "5m"
    agent_roundtrip_seconds: float = 1.0
    agent_roundtrip_for: str = "15m"
    kafka_brokers_window: str = "1h"
    kafka_brokers_for: str = "5m"
    issues_for: str = "30m"
    upstream_down_for: str = "10m"
    non_production_targets: str = ""
    """A regular expression of the Confluent target names configured with a non-production `tier`: their
    UpstreamDown is a warning; every other target's pages (critical)."""
    dropping_objects_window: str = "15m"
    dropping_objects_for: str = "10m"
    # At least 3 x the longest poll_interval + its request_deadline (the exporter's own bound for `up`):
    # the defaults give 3 x 60s + 30s = 210s for Confluent, 3 x 30s + 30s = 120s for Lenses.
    stale_seconds: float = 300
    stale_for: str = "1m"
    stream_down_for: str = "15m"
    rate_limited_ratio: float = 0.1
    rate_limited_window: str = "10m"
    rate_limited_for: str = "15m"
    exporter_absent_for: str = "5m"
    exporter_instance_down_for: str = "5m"
    flink_left_running_window: str = "1h"
    flink_left_running_for: str = "5m"
    flink_unknown_phase_for: str = "15m"
    cluster_label: str = ""
    """A label every aggregation keeps (e.g. `cluster`) when one Prometheus or a global ruler sees the
    exporters of several clusters; empty (the default) for none."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name.endswith(("_for", "_window")) and not DURATION.match(str(value)):
                raise ValueError(f"{item.name}: expected a Prometheus duration like 5m, got {value!r}")
            if isinstance(value, float) and not value > 0:
                raise ValueError(f"{item.name}: expected a number above 0, got {value!r}")
        if '"' in self.non_production_targets or "\\" in self.non_production_targets:
            raise ValueError(
                "non_production_targets: expected a regular expression of target names without quotes "
                f"or backslashes, got {self.non_production_targets!r}"
            )
        if self.cluster_label and not LABEL_NAME.match(self.cluster_label):
            raise ValueError(f"cluster_label: expected a label name like cluster, got {self.cluster_label!r}")
        if not self.job_selector.strip() or "{" in self.job_selector or "}" in self.job_selector:
            raise ValueError(
                'job_selector: expected label matchers without braces, like job="x", '
                f"got {self.job_selector!r}"
            )

    def replace(self, **changes: Any) -> AlertSettings:
        """A copy with some values changed (strings converted to the field's type)."""
        types = {item.name: type(getattr(self, item.name)) for item in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(types))
        if unknown:
            raise ValueError(f"unknown setting {', '.join(unknown)}; known: {', '.join(sorted(types))}")
        return dataclasses.replace(self, **{name: types[name](value) for name, value in changes.items()})


def rule_file(settings: AlertSettings | None = None) -> dict[str, Any]:
    """The whole rule file as data."""
    rules = RuleGroups(settings or AlertSettings())
    return {
        "groups": [
            {"name": "lenses-hq-environments", "rules": rules.environments()},
            {"name": "lenses-hq-flink-agents", "rules": rules.flink_agents()},
            {"name": "lenses-hq-exporter", "rules": rules.exporter()},
        ]
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so expressions read as they were written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_text)

HEADER = (
    "# Generated by `python -m alerts.generate` from exporter/alerts/rules.py: change the thresholds or\n"
    "# the job selector there or with its options (see docs/runbook.md), not in this file.\n"
)


def render(settings: AlertSettings | None = None) -> str:
    """The rule file's text."""
    body = yaml.dump(rule_file(settings), Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return HEADER + body
