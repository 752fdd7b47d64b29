"""Per-target health (for /readyz, the landing page and logs): each target's state, which it also sets on
the self-metrics (`exporter.telemetry`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from exporter.telemetry import Telemetry

log = structlog.get_logger("exporter.health")


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
        # Set at every stream update: looked up once here rather than by label values each time.
        self._objects = self.telemetry.objects.labels(self.source, self.name)
        self._objects_filtered = self.telemetry.objects_filtered.labels(self.source, self.name)
        self._objects.set(0)
        self._objects_filtered.set(0)
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
        self._objects.set(objects)

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
        self._objects.set(objects)

    def objects_skipped(self, objects: int) -> None:
        """How many objects the target's include/exclude filters skip now."""
        self._objects_filtered.set(objects)

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
