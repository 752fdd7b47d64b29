"""The alert rules as data: one function of `AlertSettings` (the job selector and every threshold).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from exporter.confluent.metrics import COMMON_LABELS

PREFIX = "LensesHQ"
"""Every alert name starts with this."""

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")

RUNBOOK_URL = "https://github.com/lenses-hq-exporter/lenses-hq-exporter/blob/main/docs/runbook.md"

FLINK_LABELS = ", ".join(COMMON_LABELS)
"""The labels that identify one Confluent Flink agent, as the Confluent families declare them."""

ENVIRONMENT_LABELS = "target, environment, tier"
"""The labels that identify one Lenses environment: the HQ it belongs to, its name and tier."""

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


def _anchor(name: str) -> str:
    """The runbook heading anchor for an alert: GitHub lowercases a heading to build it."""
    return name.lower()


class _Rules:
    """Builds rule dictionaries for one `AlertSettings`."""

    def __init__(self, settings: AlertSettings) -> None:
        self.s = settings
        self.env = self.by(ENVIRONMENT_LABELS)
        self.flink = self.by(FLINK_LABELS)

    def by(self, labels: str) -> str:
        """A label list for `by (...)` / `on (...)`, with the cluster label when one is set."""
        return f"{labels}, {self.s.cluster_label}" if self.s.cluster_label else labels

    def named(self, expr: str) -> str:
        """`expr` over environments, with the environment's `display_name` joined from its `_info` series
        (an environment without one, or with `_info` denied, keeps its alert, without the name)."""
        info = self.select("lenses_environment_info")
        return f"""
(
{expr.strip()}
)
* on ({self.env}) group_left (display_name)
  max by ({self.env}, display_name) ({info})
or on ({self.env})
(
{expr.strip()}
)
"""

    def select(self, metric: str, matchers: str = "") -> str:
        """`metric{<job selector>,<matchers>}`."""
        joined = ", ".join(part for part in (self.s.job_selector, matchers) if part)
        return f"{metric}{{{joined}}}"

    def alert(
        self,
        name: str,
        expr: str,
        duration: str,
        severity: str,
        summary: str,
        description: str,
    ) -> dict[str, Any]:
        rule: dict[str, Any] = {"alert": PREFIX + name, "expr": expr.strip() + "\n"}
        if duration:
            rule["for"] = duration
        rule["labels"] = {"severity": severity}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook_url": f"{self.s.runbook_url}#{_anchor(PREFIX + name)}",
        }
        return rule

    def by_tier(
        self, name: str, expr: Callable[[str], str], duration: str, summary: str, description: str
    ) -> list[dict[str, Any]]:
        """One alert as two rules: critical for the production tier, warning for every other tier.

        `expr` gets the tier matcher to add to its selectors.
        """
        production = f'tier="{self.s.production_tier}"'
        other = f'tier!="{self.s.production_tier}"'
        return [
            self.alert(name, expr(production), duration, "critical", summary, description),
            self.alert(name, expr(other), duration, "warning", summary, description),
        ]

    def environments(self) -> list[dict[str, Any]]:
        s = self.s
        where = (
            "environment {{ $labels.environment }}{{ with $labels.display_name }} ({{ . }}){{ end }} "
            "of HQ {{ $labels.target }} (tier {{ $labels.tier }})"
        )
        env = self.env
        updated = self.select("lenses_environment_metrics_updated_timestamp_seconds")
        connected = f"max by ({env}) ({self.select('lenses_environment_agent_connected')}) == 1"
        brokers = "lenses_environment_kafka_brokers"
        return [
            *self.by_tier(
                "AgentDisconnected",
                lambda tier: self.named(
                    f"max by ({env}) ({self.select('lenses_environment_agent_connected', tier)}) == 0"
                ),
                s.agent_disconnected_for,
                "A Lenses agent is disconnected from HQ.",
                f"The agent of {where} has been disconnected from Lenses HQ for more than "
                f"{s.agent_disconnected_for} (agent_connected = {{{{ $value }}}}).",
            ),
            self.alert(
                "AgentConnectivityUnknown",
                f"""
max by ({env}, display_name) ({self.select("lenses_environment_info")})
unless on ({env})
  max by ({env}) ({self.select("lenses_environment_agent_connected")})
""",
                s.agent_connectivity_unknown_for,
                "warning",
                "HQ does not say whether a Lenses agent is connected.",
                f"Lenses HQ reports no boolean agent_connected for {where} (missing, null or another type) "
                f"and has not for {s.agent_connectivity_unknown_for} (value {{{{ $value }}}}): "
                "LensesHQAgentDisconnected cannot fire for it meanwhile.",
            ),
            self.alert(
                "AgentFlapping",
                self.named(f"""
max by ({env}) (
  increase({self.select("lenses_environment_agent_disconnects_total")}[{s.agent_flapping_window}])
) >= {s.agent_flapping_disconnects:g}
"""),
                s.agent_flapping_for,
                "warning",
                "A Lenses agent keeps disconnecting and coming back.",
                f'The agent of {where} disconnected {{{{ $value | printf "%.0f" }}}} times in the last '
                f"{s.agent_flapping_window} (threshold {s.agent_flapping_disconnects:g}), however briefly.",
            ),
            self.alert(
                "AgentMetricsStale",
                self.named(f"""
(
  time()
  - max by ({env}, section) ({updated})
) > {s.agent_metrics_stale_seconds:g}
and on ({env})
  {connected}
"""),
                s.agent_metrics_stale_for,
                "warning",
                "A connected Lenses agent stopped updating its metrics.",
                f"The {{{{ $labels.section }}}} metrics of {where} were last updated "
                f"{{{{ $value | humanizeDuration }}}} ago although its agent is connected "
                f"(threshold {s.agent_metrics_stale_seconds:g}s).",
            ),
            self.alert(
                "AgentRoundtripHigh",
                self.named(
                    f"max by ({env}) ({self.select('lenses_environment_agent_roundtrip_seconds')})"
                    f" > {s.agent_roundtrip_seconds:g}"
                ),
                s.agent_roundtrip_for,
                "warning",
                "The round trip between Lenses HQ and an agent is slow.",
                f"The round trip between HQ and the agent of {where} is {{{{ $value | humanizeDuration }}}} "
                f"(threshold {s.agent_roundtrip_seconds:g}s for {s.agent_roundtrip_for}).",
            ),
            *self.by_tier(
                "KafkaBrokersDropped",
                lambda tier: self.named(
                    f"""
max by ({env}) ({self.select(brokers, tier)})
< max by ({env}) (max_over_time({self.select(brokers, tier)}[{s.kafka_brokers_window}]))
"""
                ),
                s.kafka_brokers_for,
                "The Kafka cluster of an environment has fewer brokers than before.",
                f"The Kafka cluster of {where} has {{{{ $value }}}} brokers, fewer than its maximum over the "
                f"last {s.kafka_brokers_window}.",
            ),
            self.alert(
                "IssuesReported",
                self.named(f"max by ({env}) ({self.select('lenses_environment_issues')}) > 0"),
                s.issues_for,
                "warning",
                "A Lenses environment reports issues.",
                f"The agent of {where} has reported {{{{ $value }}}} issues for more than {s.issues_for}.",
            ),
        ]

    def flink_agents(self) -> list[dict[str, Any]]:
        s = self.s
        where = (
            "Flink agent {{ $labels.agent }} (environment {{ $labels.environment_id }}, "
            "cluster {{ $labels.kafka_cluster_id }}, tier {{ $labels.tier }})"
        )
        running = self.select("confluent_flink_agent_status_phase", 'phase="RUNNING"')
        unknown = self.select("confluent_flink_agent_status_phase", 'phase!~"READY|RUNNING"')
        return [
            self.alert(
                "FlinkAgentLeftRunning",
                f"""
max by ({self.flink}) ({running}) == 0
and on ({self.flink})
  max by ({self.flink}) (max_over_time({running}[{s.flink_left_running_window}])) == 1
""",
                s.flink_left_running_for,
                "warning",
                "A Confluent Flink agent stopped running.",
                f"{where} was RUNNING within the last {s.flink_left_running_window} and is not any more "
                f"(RUNNING = {{{{ $value }}}}).",
            ),
            self.alert(
                "FlinkAgentUnknownPhase",
                f"max by ({self.flink}, phase) ({unknown}) == 1",
                s.flink_unknown_phase_for,
                "warning",
                "A Confluent Flink agent is in a phase other than READY or RUNNING.",
                f"{where} has been in phase {{{{ $labels.phase }}}} for more than "
                f"{s.flink_unknown_phase_for} (value {{{{ $value }}}}).",
            ),
        ]

    def exporter(self) -> list[dict[str, Any]]:
        s = self.s
        failures = self.select("lenses_hq_exporter_upstream_request_failures_total", 'reason="http_429"')
        requests = self.select("lenses_hq_exporter_upstream_requests_total")
        up_lenses = self.select("lenses_hq_exporter_up", 'source="lenses"')
        pattern = s.non_production_targets
        up_production = self.select("lenses_hq_exporter_up", f'source="confluent", target!~"{pattern}"')
        up_non_production = self.select("lenses_hq_exporter_up", f'source="confluent", target=~"{pattern}"')
        window = s.dropping_objects_window
        source_target = self.by("source, target")
        return [
            self.alert(
                "ExporterAbsent",
                f"absent({self.select('up')} == 1)",
                s.exporter_absent_for,
                "critical",
                "No lenses-hq-exporter is up: Lenses and Flink alerts cannot fire.",
                f"Prometheus has had no successful scrape of {{{s.job_selector}}} for "
                f"{s.exporter_absent_for}: every Lenses HQ and Flink alert is blind until the exporter is "
                "back.",
            ),
            self.alert(
                "ExporterInstanceDown",
                f"max by ({self.by('instance')}) ({self.select('up')}) == 0",
                s.exporter_instance_down_for,
                "warning",
                "Prometheus cannot scrape one lenses-hq-exporter instance.",
                "Exporter instance {{ $labels.instance }} has not been scraped successfully for "
                f"{s.exporter_instance_down_for} (up = {{{{ $value }}}}). A replica has others covering for "
                "it; a shard's environments and agents go unwatched until it is back.",
            ),
            *[
                self.alert(
                    "ExporterUpstreamDown",
                    expr,
                    s.upstream_down_for,
                    severity,
                    "The exporter cannot sync an upstream; its series are frozen.",
                    "The exporter's last sync of {{ $labels.source }} target {{ $labels.target }} failed and "
                    f"it has not succeeded for {s.upstream_down_for} (up = {{{{ $value }}}}): that target's "
                    "series keep their last good values and its alerts cannot fire "
                    "(see lenses_hq_exporter_last_error_info for why).",
                )
                for severity, expr in (
                    (
                        "critical",
                        f"""
max by ({source_target}) ({up_lenses}) == 0
or
max by ({source_target}) ({up_production}) == 0
""",
                    ),
                    (
                        "warning",
                        f"max by ({source_target}) ({up_non_production}) == 0",
                    ),
                )
            ],
            self.alert(
                "ExporterDroppingObjects",
                f"""
max by ({source_target}) (increase({self.select("lenses_hq_exporter_invalid_objects_total")}[{window}])) > 0
or
max by ({source_target}) (increase({self.select("lenses_hq_exporter_invalid_fields_total")}[{window}])) > 0
""",
                s.dropping_objects_for,
                "warning",
                "The exporter is dropping upstream objects or fields it cannot decode.",
                "The exporter dropped {{ $value }} undecodable objects or fields of {{ $labels.source }} "
                f"target {{{{ $labels.target }}}} in the last {window}, for more than "
                f"{s.dropping_objects_for}: the series they feed are missing (see "
                "lenses_hq_exporter_invalid_fields_total by field, and the exporter's log).",
            ),
            self.alert(
                "ExporterStale",
                f"""
time() - max by ({source_target}) ({self.select("lenses_hq_exporter_last_success_timestamp_seconds")} > 0)
> {s.stale_seconds:g}
""",
                s.stale_for,
                "warning",
                "The exporter's data for an upstream target is stale.",
                "No replica has synced {{ $labels.source }} target {{ $labels.target }} successfully for "
                f"{{{{ $value | humanizeDuration }}}} (threshold {s.stale_seconds:g}s): its series are old "
                "whatever `lenses_hq_exporter_up` says.",
            ),
            self.alert(
                "ExporterStreamDown",
                f"max by ({self.by('target')}) ({self.select('lenses_hq_exporter_sse_connected')}) == 0",
                s.stream_down_for,
                "info",
                "The exporter's live stream to Lenses HQ is down; it falls back to polling.",
                "The live stream to Lenses HQ target {{ $labels.target }} has been closed for more than "
                f"{s.stream_down_for} (sse_connected = {{{{ $value }}}}): changes show up only at each "
                "re-list.",
            ),
            self.alert(
                "ExporterRateLimited",
                f"""
sum by ({self.by("source, endpoint")}) (rate({failures}[{s.rate_limited_window}]))
/ sum by ({self.by("source, endpoint")}) (rate({requests}[{s.rate_limited_window}]))
> {s.rate_limited_ratio:g}
""",
                s.rate_limited_for,
                "warning",
                "An upstream keeps rate-limiting the exporter.",
                "{{ $value | humanizePercentage }} of the exporter's requests to {{ $labels.source }} "
                "endpoint {{ $labels.endpoint }} have been answered 429 for more than "
                f"{s.rate_limited_for} (threshold {s.rate_limited_ratio:.0%}).",
            ),
        ]


def rule_file(settings: AlertSettings | None = None) -> dict[str, Any]:
    """The whole rule file as data."""
    rules = _Rules(settings or AlertSettings())
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
