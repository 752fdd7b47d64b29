"""The alert rules themselves, group by group (Lenses environments, Flink agents, the exporter): each an
expression, a duration, a severity, a summary, a description and a runbook link, built from one
`AlertSettings`. Every expression aggregates away `instance`; see `exporter.alerts.rules`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exporter.confluent.metrics import COMMON_LABELS

if TYPE_CHECKING:
    from exporter.alerts.rules import AlertSettings

PREFIX = "LensesHQ"
"""Every alert name starts with this."""

FLINK_LABELS = ", ".join(COMMON_LABELS)
"""The labels that identify one Confluent Flink agent, as the Confluent families declare them."""

ENVIRONMENT_LABELS = "target, environment, tier"
"""The labels that identify one Lenses environment: the HQ it belongs to, its name and tier."""


def _anchor(name: str) -> str:
    """The runbook heading anchor for an alert: GitHub lowercases a heading to build it."""
    return name.lower()


class RuleGroups:
    """Builds the rule dictionaries of each group for one `AlertSettings`."""

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
