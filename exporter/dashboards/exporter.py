"""Exporter health: is each exporter scraped, is each upstream target synced, how long syncs take, the
live stream's state and reconnects, upstream request failures and rate limits, and the process itself."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from exporter.dashboards.common import (
    GREEN,
    JOB,
    RED,
    STREAM,
    UP,
    Column,
    base,
    datasource_variable,
    job_variable,
    label_variable,
    query,
    row,
    stat_panel,
    state_panel,
    table_panel,
    timeseries_panel,
)

UID = "lenses-hq-exporter"

FILTER = f'{JOB}, instance=~"$instance"'


PER_TARGET = (
    "lenses_hq_exporter_up",
    "lenses_hq_exporter_last_success_timestamp_seconds",
    "lenses_hq_exporter_sync_duration_seconds",
    "lenses_hq_exporter_sse_connected",
    "lenses_hq_exporter_sse_events_total",
    "lenses_hq_exporter_sse_reconnects_total",
    "lenses_hq_exporter_objects",
    "lenses_hq_exporter_objects_filtered",
    "lenses_hq_exporter_invalid_objects_total",
    "lenses_hq_exporter_invalid_fields_total",
    "lenses_hq_exporter_last_error_info",
    "lenses_hq_exporter_rate_limit_remaining",
    "lenses_hq_exporter_rate_limit_limit",
)
"""Self-metrics with a `target` label: the target variable narrows them."""


def select(metric: str, extra: str = "") -> str:
    """The metric on the selected jobs and instances (and targets, when it has one)."""
    targets = ', target=~"$target"' if metric in PER_TARGET else ""
    return f"{metric}{{{FILTER}{targets}{extra}}}"


def build() -> dashboard.Dashboard:
    """The exporter health dashboard."""
    rate_limited = select("lenses_hq_exporter_upstream_request_failures_total", ', reason="http_429"')
    return (
        base(
            UID,
            "Lenses HQ / Exporter",
            "lenses-hq-exporter itself: scrapes, upstream syncs, the live stream, request failures and rate "
            "limits, and the process.",
        )
        .with_variable(datasource_variable())
        .with_variable(job_variable())
        .with_variable(
            label_variable(
                "instance",
                "Instance",
                f"label_values(lenses_hq_exporter_build_info{{{JOB}}}, instance)",
                "Exporter replicas (scrape targets).",
            )
        )
        .with_variable(
            label_variable(
                "target",
                "Target",
                f"label_values(lenses_hq_exporter_up{{{JOB}}}, target)",
                "The upstream targets (Lenses HQs, Confluent environments), as the configuration names them.",
            )
        )
        .with_row(row("Targets"))
        .with_panel(
            stat_panel(
                "Exporters up",
                "Exporter instances Prometheus scrapes successfully.",
                "none",
                query(f"sum({select('up')})", instant=True),
                steps=((None, RED), (1, GREEN)),
                span=6,
            )
        )
        .with_panel(
            stat_panel(
                "Upstream targets down",
                "Upstream targets (Lenses HQ, Confluent environments) whose last sync failed on every "
                "replica.",
                "none",
                query(
                    f"count(max by (source, target) ({select('lenses_hq_exporter_up')}) == 0) or vector(0)",
                    instant=True,
                ),
                steps=((None, GREEN), (1, RED)),
                span=6,
            )
        )
        .with_panel(
            stat_panel(
                "Objects tracked",
                "Environments and Flink agents currently tracked, over all targets.",
                "none",
                query(
                    f"sum(max by (source, target) ({select('lenses_hq_exporter_objects')}))",
                    instant=True,
                ),
                span=6,
            )
        )
        .with_panel(
            stat_panel(
                "Version",
                "The exporter version(s) running.",
                "none",
                query(
                    f"count by (version) ({select('lenses_hq_exporter_build_info')})",
                    "{{version}}",
                    instant=True,
                ),
                no_value="unknown",
                text_name=True,
                span=6,
            )
        )
        .with_panel(
            state_panel(
                "Target sync state",
                "Whether each exporter's last sync of each upstream target succeeded.",
                query(select("lenses_hq_exporter_up"), "{{instance}} {{source}}/{{target}}"),
                UP,
                span=24,
            )
        )
        .with_panel(
            table_panel(
                "Why targets are down",
                "Each target's state as of its last sync: `ok`, or why it failed (the bounded reason and the "
                "upstream's own error type, e.g. HQ's forbidden or agent_not_connected, Confluent's "
                "errors[].code). The landing page and the log add the upstream's own words.",
                [
                    Column(
                        "State",
                        "max by (instance, source, target, reason, upstream_type) "
                        f"({select('lenses_hq_exporter_last_error_info')})\n"
                        "or label_replace(max by (instance, source, target) "
                        f'({select("lenses_hq_exporter_up")}) == 1, "reason", "ok", "", "")',
                        hidden=True,
                    ),
                ],
                keep=["instance", "source", "target", "reason", "upstream_type"],
                rename={"upstream_type": "upstream error type"},
                height=6,
            )
        )
        .with_row(row("Syncs"))
        .with_panel(
            timeseries_panel(
                "Sync duration",
                "Duration of the last full list (Lenses) or poll (Confluent) of each target.",
                "s",
                [
                    query(
                        select("lenses_hq_exporter_sync_duration_seconds"),
                        "{{instance}} {{source}}/{{target}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Time since last successful sync",
                "Seconds since each target last synced successfully: how old the data on the other "
                "dashboards can be.",
                "s",
                [
                    query(
                        f"time() - {select('lenses_hq_exporter_last_success_timestamp_seconds')}",
                        "{{instance}} {{source}}/{{target}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Objects per target",
                "Environments or agents each target holds, and those its include/exclude filters skip.",
                "none",
                [
                    query(
                        select("lenses_hq_exporter_objects"), "{{instance}} {{source}}/{{target}}", ref="A"
                    ),
                    query(
                        select("lenses_hq_exporter_objects_filtered"),
                        "{{instance}} {{source}}/{{target}} filtered",
                        ref="B",
                    ),
                ],
                span=8,
            )
        )
        .with_row(row("Live stream"))
        .with_panel(
            state_panel(
                "Live stream",
                "Whether the Server-Sent-Events stream to each Lenses HQ target is open.",
                query(select("lenses_hq_exporter_sse_connected"), "{{instance}} {{target}}"),
                STREAM,
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Live-stream reconnects",
                "Times the stream was reopened, per interval.",
                "none",
                [
                    query(
                        f"sum by (instance, target) "
                        f"(increase({select('lenses_hq_exporter_sse_reconnects_total')}[$__rate_interval]))",
                        "{{instance}} {{target}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Live-stream events",
                "Events received per second, by event name.",
                "eps",
                [
                    query(
                        f"sum by (target, event) "
                        f"(rate({select('lenses_hq_exporter_sse_events_total')}[$__rate_interval]))",
                        "{{target}} {{event}}",
                    )
                ],
                span=8,
            )
        )
        .with_row(row("Upstream requests"))
        .with_panel(
            timeseries_panel(
                "Requests",
                "Requests per second sent to each upstream endpoint.",
                "reqps",
                [
                    query(
                        f"sum by (source, endpoint) "
                        f"(rate({select('lenses_hq_exporter_upstream_requests_total')}[$__rate_interval]))",
                        "{{source}} {{endpoint}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Failures by reason",
                "Failed requests per second by reason (timeout, connect, http_5xx, http_429, http_401, "
                "decode, ...).",
                "reqps",
                [
                    query(
                        f"sum by (source, endpoint, reason) "
                        f"(rate({select('lenses_hq_exporter_upstream_request_failures_total')}[$__rate_interval]))",
                        "{{source}} {{endpoint}} {{reason}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Rate limited",
                "Share of requests answered 429 Too Many Requests, per endpoint.",
                "percentunit",
                [
                    query(
                        f"sum by (source, endpoint) (rate({rate_limited}[$__rate_interval]))\n"
                        "/ sum by (source, endpoint) "
                        f"(rate({select('lenses_hq_exporter_upstream_requests_total')}[$__rate_interval]))",
                        "{{source}} {{endpoint}}",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Rate-limit budget left",
                "Share of each target's rate-limit budget left, from X-RateLimit-Remaining and "
                "X-RateLimit-Limit on its answers (Confluent targets): it runs out before requests are "
                "refused.",
                "percentunit",
                [
                    query(
                        f"min by (source, target) ({select('lenses_hq_exporter_rate_limit_remaining')})\n"
                        f"/ max by (source, target) ({select('lenses_hq_exporter_rate_limit_limit')})",
                        "{{source}}/{{target}}",
                    )
                ],
                span=8,
            )
        )
        .with_row(row("Decoding"))
        .with_panel(
            timeseries_panel(
                "Dropped by decoding",
                "Upstream objects dropped whole (undecodable) and fields dropped from objects kept (a "
                "non-boolean agent_connected, a negative count, ...), per interval. The series they feed are "
                "missing; the exporter's log names them with the upstream's request id.",
                "none",
                [
                    query(
                        "sum by (source, target) "
                        f"(increase({select('lenses_hq_exporter_invalid_objects_total')}[$__rate_interval]))",
                        "{{source}}/{{target}} objects",
                        ref="A",
                    ),
                    query(
                        "sum by (source, target, field) "
                        f"(increase({select('lenses_hq_exporter_invalid_fields_total')}[$__rate_interval]))",
                        "{{source}}/{{target}} {{field}}",
                        ref="B",
                    ),
                ],
                span=24,
            )
        )
        .with_row(row("Process"))
        .with_panel(
            timeseries_panel(
                "CPU",
                "CPU seconds used per second by each exporter process.",
                "percentunit",
                [
                    query(
                        f"rate({select('process_cpu_seconds_total')}[$__rate_interval])",
                        "{{instance}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Memory",
                "Resident memory of each exporter process.",
                "bytes",
                [query(select("process_resident_memory_bytes"), "{{instance}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Scrape duration",
                "How long Prometheus takes to scrape each exporter, against the scrape timeout (the timeout "
                "line needs Prometheus' --enable-feature=extra-scrape-metrics). A scrape that reaches the "
                "timeout is dropped whole: up goes to 0.",
                "s",
                [
                    query(select("scrape_duration_seconds"), "{{instance}} scrape", ref="A"),
                    query(select("scrape_timeout_seconds"), "{{instance}} timeout", ref="B"),
                ],
                span=24,
            )
        )
    )
