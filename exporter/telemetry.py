"""The exporter's self-metrics (`lenses_hq_exporter_*`): each declared once, as a typed attribute of
`Telemetry` (name, type, help, label names), in a registry of their own; `exporter.docs` documents them
from these declarations."""

from __future__ import annotations

import platform
from typing import Generic, TypeVar, cast, overload

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


MetricT = TypeVar("MetricT", Gauge, Counter)


class SelfMetric(Generic[MetricT]):
    """One self-metric's declaration, as a `Telemetry` class attribute: read on a Telemetry it is that
    instance's metric (a `Gauge` or `Counter`), read on the class it is the declaration."""

    def __init__(self, kind: type[MetricT], name: str, help: str, labels: tuple[str, ...]) -> None:
        self.kind: type[MetricT] = kind
        self.name = name
        """The name as declared (a counter's without `_total`)."""
        self.help = help
        self.labels = labels
        self.attribute = ""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @property
    def exposition_type(self) -> str:
        """`gauge` or `counter`, as the exposition's TYPE line says."""
        return "counter" if self.kind is Counter else "gauge"

    @property
    def exposed_name(self) -> str:
        """The sample name as scraped (counters gain `_total`)."""
        return self.name + "_total" if self.kind is Counter else self.name

    def create(self, registry: CollectorRegistry) -> MetricT:
        """The metric itself, registered in `registry`."""
        metric: MetricT = self.kind(self.name, self.help, self.labels, registry=registry)
        return metric

    @overload
    def __get__(self, instance: None, owner: type) -> SelfMetric[MetricT]: ...

    @overload
    def __get__(self, instance: Telemetry, owner: type) -> MetricT: ...

    def __get__(self, instance: Telemetry | None, owner: type) -> SelfMetric[MetricT] | MetricT:
        if instance is None:
            return self
        return cast(MetricT, instance.metrics[self.attribute])


class Telemetry:
    """Self-metrics in a registry of their own, plus the process/python collectors. One per exporter, so
    tests and embedded uses never share state. The declarations below, in this order, are what /metrics
    serves and docs/metrics.md lists."""

    build_info = SelfMetric(
        Gauge,
        "lenses_hq_exporter_build_info",
        "Version of the exporter and of Python it runs on; value 1.",
        ("version", "python_version"),
    )

    up = SelfMetric(
        Gauge,
        "lenses_hq_exporter_up",
        "1 when the last sync of the target succeeded, no longer ago than 3 poll intervals plus the request "
        "deadline; data series keep their last good values while 0.",
        ("source", "target"),
    )

    last_success = SelfMetric(
        Gauge,
        "lenses_hq_exporter_last_success_timestamp_seconds",
        "Unix time of the target's last successful sync.",
        ("source", "target"),
    )

    sync_duration = SelfMetric(
        Gauge,
        "lenses_hq_exporter_sync_duration_seconds",
        "Duration of the target's last full list or poll.",
        ("source", "target"),
    )

    requests = SelfMetric(
        Counter,
        "lenses_hq_exporter_upstream_requests",
        "Requests sent to an upstream.",
        ("source", "endpoint"),
    )

    failures = SelfMetric(
        Counter,
        "lenses_hq_exporter_upstream_request_failures",
        "Upstream requests that failed, by a short reason "
        "(timeout, connect, network, http_5xx, http_429, http_401, decode, ...).",
        ("source", "endpoint", "reason"),
    )

    invalid_objects = SelfMetric(
        Counter,
        "lenses_hq_exporter_invalid_objects",
        "Upstream objects dropped because they could not be decoded.",
        ("source", "target"),
    )

    invalid_fields = SelfMetric(
        Counter,
        "lenses_hq_exporter_invalid_fields",
        "Upstream fields dropped or cut while decoding an object, by bounded field name "
        "(e.g. agent_connected, a negative count, a label value or fan-out over its cap).",
        ("source", "target", "field"),
    )

    internal_errors = SelfMetric(
        Counter,
        "lenses_hq_exporter_internal_errors",
        "Unexpected errors inside a background loop; the loop restarts and the target is marked down.",
        ("source", "target"),
    )

    last_error_info = SelfMetric(
        Gauge,
        "lenses_hq_exporter_last_error_info",
        "1 while the target's last sync failed: the bounded reason and the upstream's own error type "
        "(HQ type, Confluent errors[].code; empty when none). Absent after a success.",
        ("source", "target", "reason", "upstream_type"),
    )

    sse_connected = SelfMetric(
        Gauge,
        "lenses_hq_exporter_sse_connected",
        "1 while the live stream to the target is open.",
        ("target",),
    )

    sse_events = SelfMetric(
        Counter,
        "lenses_hq_exporter_sse_events",
        "Live-stream events received, by event name; unknown ones as `unknown`, dropped oversize ones as "
        "`oversize`, undecodable ones as `invalid`.",
        ("target", "event"),
    )

    sse_reconnects = SelfMetric(
        Counter,
        "lenses_hq_exporter_sse_reconnects",
        "Times the live stream was opened again after the first connection.",
        ("target",),
    )

    objects = SelfMetric(
        Gauge,
        "lenses_hq_exporter_objects",
        "Environments or agents currently tracked for the target (after its include/exclude filters).",
        ("source", "target"),
    )

    rate_limit_remaining = SelfMetric(
        Gauge,
        "lenses_hq_exporter_rate_limit_remaining",
        "Requests left in the target's rate-limit window, from X-RateLimit-Remaining on its last answer "
        "that carried it.",
        ("source", "target"),
    )

    rate_limit_limit = SelfMetric(
        Gauge,
        "lenses_hq_exporter_rate_limit_limit",
        "The target's rate-limit budget, from X-RateLimit-Limit on its last answer that carried it.",
        ("source", "target"),
    )

    objects_filtered = SelfMetric(
        Gauge,
        "lenses_hq_exporter_objects_filtered",
        "Environments or agents the target's include/exclude filters skip.",
        ("source", "target"),
    )

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.metrics: dict[str, Gauge | Counter] = {
            declaration.attribute: declaration.create(self.registry) for declaration in self.declarations()
        }
        self.build_info.labels(__version__, platform.python_version()).set(1)

    @classmethod
    def declarations(cls) -> list[SelfMetric[Gauge] | SelfMetric[Counter]]:
        """Every self-metric's declaration, in declaration order."""
        return [value for value in vars(cls).values() if isinstance(value, SelfMetric)]

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

    def start_stream(self, target: str, events: tuple[str, ...]) -> dict[str, Counter]:
        """A target's live stream: closed, no reconnect, and each known event name at 0; returns the event
        counters by name (the stream counts every event: no lookup by label values each time)."""
        self.sse_connected.labels(target).set(0)
        self.sse_reconnects.labels(target)
        return {event: self.sse_events.labels(target, event) for event in events}
