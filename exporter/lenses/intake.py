"""What one HQ sends, turned into environments: an object that cannot be one is dropped and counted, a
field decoding drops is counted, and each distinct problem is logged once. The shard and the HQ's
include/exclude filters are applied here, so a skipped environment is never rendered."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any

import structlog

from exporter import decode
from exporter.config import LensesSettings
from exporter.health import TargetStatus
from exporter.lenses.client import SOURCE
from exporter.lenses.metrics import ROUNDTRIP_UNITS
from exporter.lenses.model import Environment, InvalidEnvironment, decode_environment
from exporter.lenses.recognition import Fresh, Recognised, RecognitionPass
from exporter.sharding import Shard
from exporter.telemetry import Telemetry
from exporter.upstream import LISTING_BATCH, UpstreamError

log = structlog.get_logger("exporter.lenses")

PLAUSIBLE_ROUNDTRIP = (1e-6, 3600.0)
"""Seconds: a fleet whose round trips mostly fall outside this range has the wrong round-trip unit set."""


class Intake:
    """Decodes one HQ's environments, counting and logging what it drops; `filtered` names those the
    include/exclude filters skip now."""

    def __init__(
        self, settings: LensesSettings, telemetry: Telemetry, status: TargetStatus, shard: Shard
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.status = status
        self.shard = shard
        self.target = settings.name
        self.filtered: set[str] = set()
        self._logged: set[str] = set()
        self._fields_logged: dict[str, tuple[str, ...]] = {}  # environments with fields dropped
        self._roundtrip_warned = False

    def forget(self, name: str) -> None:
        """An environment gone: its dropped fields are logged again if it comes back with them."""
        self._fields_logged.pop(name, None)

    def retain(self, names: Collection[str]) -> None:
        """Forget every environment but those held now."""
        for name in self._fields_logged.keys() - names:
            del self._fields_logged[name]

    async def decode_all(
        self,
        items: Iterable[Any],
        request_id: str,
        endpoint: str | None = "environments",
        recognising: RecognitionPass | None = None,
    ) -> dict[str, Environment]:
        """Decode a listing one item at a time, each raw item dropped once decoded. A listing whose structure
        breaks between items raises `UpstreamError` (counted as a failure of `endpoint`, when given)."""
        environments: dict[str, Environment] = {}
        try:
            for index, raw in enumerate(items):
                if index % LISTING_BATCH == LISTING_BATCH - 1:
                    await asyncio.sleep(0)  # let scrapes and stream events in between
                self.add(environments, raw, request_id, recognising)
        except decode.InvalidJSON as error:
            if endpoint is not None:
                self.telemetry.failures.labels(SOURCE, endpoint, "decode").inc()
            message = f"{endpoint}: {error}" if endpoint else str(error)
            raise UpstreamError("decode", message, endpoint=endpoint or "", request_id=request_id) from None
        return self.selected(environments)

    def add(
        self,
        environments: dict[str, Environment],
        raw: Any,
        request_id: str,
        recognising: RecognitionPass | None = None,
    ) -> None:
        """Decode one listed item into `environments`, unless it is dropped, another shard's, or its name
        was listed already. A `Recognised` item is the environment held, not decoded again."""
        if isinstance(raw, Recognised):
            environment: Environment | None = raw.environment
            self._count_invalid_fields(raw.environment, request_id)
        else:
            environment = self.decode(raw.raw if isinstance(raw, Fresh) else raw, request_id)
        if environment is None or not self.shard.owns(environment.name):
            return
        if environment.name in environments:
            # Distinct upstream names that read the same (invalid UTF-8, lone surrogates, a cut): one label
            # set must not get two series, so the first listed is kept.
            self.drop("environment name listed twice (once made a label value)", request_id)
            return
        environments[environment.name] = environment
        if recognising is not None and isinstance(raw, Recognised | Fresh):
            recognising.seen_as(environment.name, raw.fingerprint)

    def selected(self, environments: dict[str, Environment]) -> dict[str, Environment]:
        """A whole listing without what the include/exclude filters skip (which becomes `filtered`)."""
        skipped = {name for name, environment in environments.items() if not self.keeps(environment)}
        for name in skipped:
            del environments[name]
        self.filtered = skipped
        self.status.objects_skipped(len(skipped))
        return environments

    def keeps(self, environment: Environment) -> bool:
        """Whether this HQ's include/exclude filters export the environment."""
        return self.settings.selection.keeps({"environment": environment.name, "tier": environment.tier})

    def decode(self, raw: Any, request_id: str) -> Environment | None:
        try:
            environment = decode_environment(raw, self.settings.metadata_labels)
        except InvalidEnvironment as error:
            self.drop(str(error), request_id)
            return None
        self._count_invalid_fields(environment, request_id)
        return environment

    def _count_invalid_fields(self, environment: Environment, request_id: str) -> None:
        """Count each field decoding dropped; log an environment's dropped fields when they change."""
        fields = environment.invalid_fields
        for name in fields:
            self.telemetry.invalid_fields.labels(SOURCE, self.target, name).inc()
        if self._fields_logged.get(environment.name, ()) == fields:
            return
        if not fields:
            del self._fields_logged[environment.name]
            return
        self._fields_logged[environment.name] = fields
        log.warning(
            "environment_field_invalid",
            target=self.target,
            environment=environment.name,
            fields=",".join(fields),
            request_id=request_id,
        )

    def check_roundtrip_unit(self, environments: Iterable[Environment]) -> None:
        """Warn once when most round trips, converted with the configured unit, are implausible."""
        if self._roundtrip_warned:
            return
        factor = ROUNDTRIP_UNITS[self.settings.roundtrip_duration_unit]
        low, high = PLAUSIBLE_ROUNDTRIP
        seconds = [
            environment.agent.roundtrip_duration * factor
            for environment in environments
            if environment.agent is not None and environment.agent.roundtrip_duration is not None
        ]
        implausible = sum(1 for value in seconds if not low <= value <= high)
        if seconds and implausible * 2 > len(seconds):
            self._roundtrip_warned = True
            log.warning(
                "roundtrip_implausible",
                target=self.target,
                implausible=implausible,
                environments=len(seconds),
                median_seconds=sorted(seconds)[len(seconds) // 2],
                hint=f"check lenses.roundtrip_duration_unit (now {self.settings.roundtrip_duration_unit})",
            )

    def drop(self, error: str, request_id: str) -> None:
        """Count an environment dropped whole, and log each distinct reason once."""
        self.telemetry.invalid_objects.labels(SOURCE, self.target).inc()
        if error not in self._logged:
            self._logged.add(error)
            log.warning("environment_dropped", target=self.target, error=error, request_id=request_id)

    def invalid_event_id(self) -> None:
        self.telemetry.invalid_fields.labels(SOURCE, self.target, "last_event_id").inc()
        if "last_event_id" not in self._logged:
            self._logged.add("last_event_id")
            log.warning(
                "stream_event_id_dropped", target=self.target, reason="too long or not printable ASCII"
            )

    def invalid_event(self, event: str, error: str, request_id: str) -> None:
        self.telemetry.sse_events.labels(self.target, "invalid").inc()
        key = f"{event}: {error}"
        if key not in self._logged:
            self._logged.add(key)
            log.warning(  # not `event=`: structlog's own first argument
                "stream_event_dropped",
                target=self.target,
                stream_event=event,
                error=error,
                request_id=request_id,
            )
