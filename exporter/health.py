"""The exporter's own state: per-target health (for /readyz, the landing page and logs) and self-metrics."""

from __future__ import annotations

import asyncio
import platform
import time
from dataclasses import dataclass

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)

from exporter import __version__

log = structlog.get_logger("exporter.health")

# Counters would otherwise expose a `*_created` series each (OpenMetrics); nobody queries them here.
disable_created_metrics()  # type: ignore[no-untyped-call]


FAILURE_REASONS = (
    "timeout",
    "connect",
    "network",
    "tls",
    "http_5xx",
    "http_429",
    "http_401",
    "http_403",
    "http_404",
    "http_4xx",
    "decode",
    "content_type",
    "too_large",
    "redirect_refused",
    "redirect_loop",
)
"""Every bounded `reason` an upstream request can fail with; each exists at 0 per endpoint from the start."""


@dataclass(frozen=True)
class SelfMetric:
    """One self-metric: its Telemetry attribute, kind, name (without `_total`), help and labels."""

    attribute: str
    kind: str  # gauge | counter
    name: str
    help: str
    labels: tuple[str, ...]

    @property
    def exposed_name(self) -> str:
        """The sample name as scraped (counters gain `_total`)."""
        return self.name + "_total" if self.kind == "counter" else self.name


SELF_METRICS = (
    SelfMetric(
        "build_info",
        "gauge",
        "lenses_hq_exporter_build_info",
        "Version of the exporter and of Python it runs on; value 1.",
        ("version", "python_version"),
    ),
    SelfMetric(
        "up",
        "gauge",
        "lenses_hq_exporter_up",
        "1 when the last sync of the target succeeded, no longer ago than 3 poll intervals plus the request "
        "deadline; data series keep their last good values while 0.",
        ("source", "target"),
    ),
    SelfMetric(
        "last_success",
        "gauge",
        "lenses_hq_exporter_last_success_timestamp_seconds",
        "Unix time of the target's last successful sync.",
        ("source", "target"),
    ),
    SelfMetric(
        "sync_duration",
        "gauge",
        "lenses_hq_exporter_sync_duration_seconds",
        "Duration of the target's last full list or poll.",
        ("source", "target"),
    ),
    SelfMetric(
        "requests",
        "counter",
        "lenses_hq_exporter_upstream_requests",
        "Requests sent to an upstream.",
        ("source", "endpoint"),
    ),
    SelfMetric(
        "failures",
        "counter",
        "lenses_hq_exporter_upstream_request_failures",
        "Upstream requests that failed, by a short reason "
        "(timeout, connect, network, http_5xx, http_429, http_401, decode, ...).",
        ("source", "endpoint", "reason"),
    ),
    SelfMetric(
        "invalid_objects",
        "counter",
        "lenses_hq_exporter_invalid_objects",
        "Upstream objects dropped because they could not be decoded.",
        ("source", "target"),
    ),
    SelfMetric(
        "invalid_fields",
        "counter",
        "lenses_hq_exporter_invalid_fields",
        "Upstream fields dropped or cut while decoding an object, by bounded field name "
        "(e.g. agent_connected, a negative count, a label value or fan-out over its cap).",
        ("source", "target", "field"),
    ),
    SelfMetric(
        "internal_errors",
        "counter",
        "lenses_hq_exporter_internal_errors",
        "Unexpected errors inside a background loop; the loop restarts and the target is marked down.",
        ("source", "target"),
    ),
    SelfMetric(
        "last_error_info",
        "gauge",
        "lenses_hq_exporter_last_error_info",
        "1 while the target's last sync failed: the bounded reason and the upstream's own error type "
        "(HQ type, Confluent errors[].code; empty when none). Absent after a success.",
        ("source", "target", "reason", "upstream_type"),
    ),
    SelfMetric(
        "sse_connected",
        "gauge",
        "lenses_hq_exporter_sse_connected",
        "1 while the live stream to the target is open.",
        ("target",),
    ),
    SelfMetric(
        "sse_events",
        "counter",
        "lenses_hq_exporter_sse_events",
        "Live-stream events received, by event name; unknown ones as `unknown`, dropped oversize ones as "
        "`oversize`, undecodable ones as `invalid`.",
        ("target", "event"),
    ),
    SelfMetric(
        "sse_reconnects",
        "counter",
        "lenses_hq_exporter_sse_reconnects",
        "Times the live stream was opened again after the first connection.",
        ("target",),
    ),
    SelfMetric(
        "objects",
        "gauge",
        "lenses_hq_exporter_objects",
        "Environments or agents currently tracked for the target (after its include/exclude filters).",
        ("source", "target"),
    ),
    SelfMetric(
        "rate_limit_remaining",
        "gauge",
        "lenses_hq_exporter_rate_limit_remaining",
        "Requests left in the target's rate-limit window, from X-RateLimit-Remaining on its last answer "
        "that carried it.",
        ("source", "target"),
    ),
    SelfMetric(
        "rate_limit_limit",
        "gauge",
        "lenses_hq_exporter_rate_limit_limit",
        "The target's rate-limit budget, from X-RateLimit-Limit on its last answer that carried it.",
        ("source", "target"),
    ),
    SelfMetric(
        "objects_filtered",
        "gauge",
        "lenses_hq_exporter_objects_filtered",
        "Environments or agents the target's include/exclude filters skip.",
        ("source", "target"),
    ),
)


class Telemetry:
    """Self-metrics (`lenses_hq_exporter_*`, declared in SELF_METRICS) in a registry of their own, plus the
    process/python collectors. One per exporter, so tests and embedded uses never share state."""

    build_info: Gauge
    up: Gauge
    last_success: Gauge
    sync_duration: Gauge
    requests: Counter
    failures: Counter
    invalid_objects: Counter
    invalid_fields: Counter
    internal_errors: Counter
    last_error_info: Gauge
    sse_connected: Gauge
    sse_events: Counter
    sse_reconnects: Counter
    objects: Gauge
    objects_filtered: Gauge
    rate_limit_remaining: Gauge
    rate_limit_limit: Gauge

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        for spec in SELF_METRICS:
            kind = Gauge if spec.kind == "gauge" else Counter
            setattr(self, spec.attribute, kind(spec.name, spec.help, spec.labels, registry=self.registry))
        self.build_info.labels(__version__, platform.python_version()).set(1)

    # Labelled counters are created at 0 as soon as their label set is known, so that `rate()` and
    # `increase()` see the first increment and a healthy dashboard shows 0, not "No data".

    def start_endpoint(self, source: str, endpoint: str) -> None:
        """An endpoint that will be called: its requests and every failure reason at 0."""
        self.requests.labels(source, endpoint)
        for reason in FAILURE_REASONS:
            self.failures.labels(source, endpoint, reason)

    def start_target(self, source: str, target: str, fields: tuple[str, ...] = ()) -> None:
        """A configured target: its invalid objects, and each field decoding may drop, at 0."""
        self.invalid_objects.labels(source, target)
        for field in fields:
            self.invalid_fields.labels(source, target, field)

    def start_stream(self, target: str, events: tuple[str, ...]) -> None:
        """A target's live stream: closed, no reconnect, and each known event name at 0."""
        self.sse_connected.labels(target).set(0)
        self.sse_reconnects.labels(target)
        for event in events:
            self.sse_events.labels(target, event)


@dataclass
class TargetStatus:
    """What the exporter knows about one configured upstream target right now."""

    source: str
    name: str
    telemetry: Telemetry
    ready: bool = False
    up: bool = False
    last_error: str = ""
    last_success: float = 0.0
    stream: str = ""  # "", "connected", "reconnecting", "unavailable"
    error_labels: tuple[str, str] | None = None
    """The (reason, upstream_type) of `last_error_info` while the last sync failed."""
    stale_after: float | None = None  # seconds without a success after which `up` is 0 (`check_freshness`)

    def __post_init__(self) -> None:
        self.telemetry.up.labels(self.source, self.name).set(0)
        self.telemetry.objects.labels(self.source, self.name).set(0)
        self.telemetry.objects_filtered.labels(self.source, self.name).set(0)
        self.telemetry.last_success.labels(self.source, self.name).set(0)
        self.telemetry.sync_duration.labels(self.source, self.name).set(0)
        self.telemetry.internal_errors.labels(self.source, self.name)  # at 0 until a loop fails

    def succeeded(self, duration: float, objects: int) -> None:
        """Record a complete sync; logs once when the target comes back."""
        if not self.up and self.ready:
            log.info("target_recovered", source=self.source, target=self.name)
        self.up, self.ready, self.last_error = True, True, ""
        self.last_success = time.time()
        self._set_error_labels(None)
        t = self.telemetry
        t.up.labels(self.source, self.name).set(1)
        t.last_success.labels(self.source, self.name).set(self.last_success)
        t.sync_duration.labels(self.source, self.name).set(duration)
        t.objects.labels(self.source, self.name).set(objects)

    def _set_error_labels(self, labels: tuple[str, str] | None) -> None:
        """Keep `last_error_info` at one series for this target (none after a success)."""
        if labels == self.error_labels:
            return
        info = self.telemetry.last_error_info
        if self.error_labels is not None:
            info.remove(self.source, self.name, *self.error_labels)
        if labels is not None:
            info.labels(self.source, self.name, *labels).set(1)
        self.error_labels = labels

    def objects_changed(self, objects: int) -> None:
        """The number of tracked objects changed between syncs (live stream)."""
        self.telemetry.objects.labels(self.source, self.name).set(objects)

    def objects_skipped(self, objects: int) -> None:
        """How many objects the target's include/exclude filters skip now."""
        self.telemetry.objects_filtered.labels(self.source, self.name).set(objects)

    def failed(self, error: str, duration: float | None = None, **fields: object) -> None:
        """Record a failed sync; the last good data stays. Logs only when the state or error changes.
        `fields` are an `UpstreamError`'s log fields: its `reason` and `upstream_type` (when any) label
        `last_error_info`."""
        if self.up or error != self.last_error:
            log.warning("sync_failed", source=self.source, target=self.name, error=error, **fields)
        self.up, self.ready, self.last_error = False, True, error
        self._set_error_labels(
            (str(fields.get("reason") or "internal"), str(fields.get("upstream_type") or ""))
        )
        self.telemetry.up.labels(self.source, self.name).set(0)
        if duration is not None:
            self.telemetry.sync_duration.labels(self.source, self.name).set(duration)

    def check_freshness(self, now: float) -> None:
        """`up` cannot outlive the data: a target up whose last success is older than `stale_after` is
        marked failed, whatever its loop believes (a sync stuck or waiting out a long Retry-After)."""
        if self.up and self.stale_after is not None and now - self.last_success > self.stale_after:
            self.failed(f"stale: no successful sync for {now - self.last_success:.0f}s", reason="stale")


def stale_after(poll_interval: float, deadline: float) -> float:
    """How old a target's last success may be before `up` says 0: three poll intervals (two missed polls
    and the one running) plus one request's total deadline. The LensesHQExporterStale alert uses the same
    rule."""
    return 3 * poll_interval + deadline


FRESHNESS_CHECK_INTERVAL = 1.0
"""Seconds between two freshness checks of every target (a comparison per target: negligible)."""


class Health:
    """Every target's status, by (source, name)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.targets: dict[tuple[str, str], TargetStatus] = {}

    def register(self, source: str, name: str, stale_after: float | None = None) -> TargetStatus:
        """A new target, pending its first sync; `up` turns 0 once its last success is older than
        `stale_after` seconds (None: never on age alone)."""
        status = TargetStatus(source, name, self.telemetry, stale_after=stale_after)
        self.targets[(source, name)] = status
        return status

    async def watch_freshness(self) -> None:
        """Check every target's freshness once a second, until cancelled."""
        while True:
            now = time.time()
            for status in self.targets.values():
                status.check_freshness(now)
            await asyncio.sleep(FRESHNESS_CHECK_INTERVAL)

    def pending(self) -> list[str]:
        """Targets that have not finished a first sync, as `source/name`."""
        return [f"{s.source}/{s.name}" for s in self.targets.values() if not s.ready]
