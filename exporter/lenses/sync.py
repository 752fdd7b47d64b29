"""The Lenses list + watch loop: a full re-list on a timer and after every stream (re)connect, the live
stream's events applied in between, and the store updated one environment at a time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Iterable
from typing import Any

import structlog
from httpx_sse import ServerSentEvent

from exporter import decode, memory
from exporter.config import LensesSettings
from exporter.exposition.store import FamilyGroup, Rendered, Store
from exporter.health import Health, stale_after
from exporter.lenses.client import SOURCE, LensesClient
from exporter.lenses.metrics import ROUNDTRIP_UNITS, common_values
from exporter.lenses.model import (
    INVALID_FIELDS,
    NO_TRANSITIONS,
    Environment,
    InvalidEnvironment,
    KafkaConnection,
    decode_environment,
    decode_kafka_connection,
)
from exporter.lenses.stream import OVERSIZE, EventParser, StreamUnavailable, connect_stream
from exporter.sharding import Shard
from exporter.supervisor import supervise
from exporter.telemetry import Telemetry
from exporter.upstream import LISTING_BATCH, UpstreamError

log = structlog.get_logger("exporter.lenses")

KNOWN_EVENTS = ("snapshot", "environment_updated", "environment_deleted")
COUNTED_EVENTS = (*KNOWN_EVENTS, "unknown", "oversize", "invalid")
"""Every `event` label of `lenses_hq_exporter_sse_events_total`."""
RECONNECT_BACKOFF_MAX = 60.0
PLAUSIBLE_ROUNDTRIP = (1e-6, 3600.0)
"""Seconds: a fleet whose round trips mostly fall outside this range has the wrong round-trip unit set."""
RECONNECT_FLOOR = 0.5
"""Seconds at least between two connections of the stream, whatever `retry:` says."""
RELIST_MIN_GAP = 5.0
"""Seconds at least between the starts of two listings (or one poll interval, when shorter)."""


class LensesSync:
    """Keeps every environment of one HQ in the store: re-list on a timer, live stream in between.

    A re-list replaces the target's whole state. A stream change that arrives while a listing is in
    flight wins over that listing (the listing may predate it), so neither can resurrect a deleted
    environment nor roll back a newer one.
    """

    def __init__(
        self,
        settings: LensesSettings,
        group: FamilyGroup[Environment],
        store: Store,
        health: Health,
        telemetry: Telemetry,
        shard: Shard | None = None,
        group_roundtrip_unit: str | None = None,
        group_metadata_labels: tuple[str, ...] | None = None,
        listing_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.settings = settings
        self.group = group
        self.store = store
        self.telemetry = telemetry
        self.shard = shard or Shard()
        self.target = settings.name
        # The group is shared by every HQ: when its round-trip unit is not this HQ's, each environment is
        # converted before rendering.
        self._roundtrip_scale = (
            ROUNDTRIP_UNITS[settings.roundtrip_duration_unit]
            / ROUNDTRIP_UNITS[group_roundtrip_unit or settings.roundtrip_duration_unit]
        )
        self._listing_slots = listing_slots or asyncio.Semaphore(1)
        """Shared by every HQ's sync: bounds the full listings in flight at once."""
        self._metadata_keys = frozenset(settings.metadata_labels)
        self._strip_metadata = bool(set(group_metadata_labels or ()) - self._metadata_keys)
        self._filtered: set[str] = set()
        """Environments this HQ's include/exclude filters skip now."""
        self.status = health.register(
            SOURCE, self.target, stale_after(settings.poll_interval, settings.deadline)
        )
        self.client = LensesClient(settings, telemetry)
        self.relist = asyncio.Event()
        self._listed = asyncio.Event()  # set by a successful listing: a stream backing off tries again now
        self._environments: dict[str, Environment] = {}
        self._stream_changes: dict[str, tuple[float, Environment | None]] = {}
        self._listing_started = float("-inf")  # when the listing applied last was requested
        self._connections: dict[str, tuple[int, tuple[KafkaConnection, ...]]] = {}
        """Per environment, how many Kafka connections HQ lists and the usable ones' details."""
        self._invalid_logged: set[str] = set()
        self._invalid_fields_logged: dict[str, tuple[str, ...]] = {}  # environments with fields dropped
        self._roundtrip_warned = False
        self.status.stream = "connecting" if settings.sse else "disabled"
        self._stream_opened_before = False
        telemetry.start_endpoint(SOURCE, "environments")
        if settings.kafka_connections:
            telemetry.start_endpoint(SOURCE, "kafka_connections")
        if settings.sse:
            telemetry.start_endpoint(SOURCE, "stream")
            telemetry.start_stream(self.target, COUNTED_EVENTS)
            telemetry.invalid_fields.labels(SOURCE, self.target, "last_event_id")
        telemetry.start_target(SOURCE, self.target, INVALID_FIELDS)

    async def run(self) -> None:
        """Poll and stream until cancelled, each loop supervised on its own: one failing does not end the
        other, and a failed loop starts again within a poll interval."""
        loops = {"listing": self._poll_forever}
        if self.settings.sse:
            loops["stream"] = self._stream_forever
        restart_within = min(self.settings.poll_interval, RECONNECT_BACKOFF_MAX)
        async with asyncio.TaskGroup() as group:
            for name, loop in loops.items():
                supervised = supervise(
                    name,
                    loop,
                    source=SOURCE,
                    target=self.target,
                    telemetry=self.telemetry,
                    status=self.status,
                    max_backoff=restart_within,
                )
                group.create_task(supervised, name=f"lenses:{self.target}:{name}")

    async def aclose(self) -> None:
        """Close upstream connections."""
        await self.client.aclose()

    # -- listing ---------------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        clock = asyncio.get_running_loop().time
        shortest_gap = min(self.settings.poll_interval, RELIST_MIN_GAP)
        while True:
            self.relist.clear()
            started = clock()
            await self.sync_once()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as the
            # event is set, and a loop that cannot be cancelled hangs the shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self.relist.wait()
            # A re-list asked for early (every stream reconnect asks) waits out the shortest gap: a stream
            # that reconnects many times a second must not list the whole HQ as often.
            await asyncio.sleep(max(0.0, started + shortest_gap - clock()))

    async def sync_once(self) -> bool:
        """One full listing, applied only when complete; returns whether it succeeded."""
        started_wall = time.monotonic()
        try:
            async with self._listing_slots:
                items, request_id = await self.client.list_environments()
                environments = await self._decode_all(items, request_id)
        except UpstreamError as error:
            self.status.failed(error.message, time.monotonic() - started_wall, **error.log_fields())
            return False
        del items  # the raw JSON goes before rendering, so the new state reuses its memory
        if self.settings.kafka_connections:
            await self._poll_connections(environments)
        await self._apply_listing(environments, started_wall)
        memory.settle_after_listing()
        self._check_roundtrip_unit()
        self.status.succeeded(time.monotonic() - started_wall, len(self._environments))
        self._listed.set()
        return True

    async def _decode_all(
        self, items: Iterable[Any], request_id: str, endpoint: str | None = "environments"
    ) -> dict[str, Environment]:
        """Decode a listing one item at a time, each raw item dropped once decoded. A listing whose structure
        breaks between items raises `UpstreamError` (counted as a failure of `endpoint`, when given)."""
        environments: dict[str, Environment] = {}
        try:
            for index, raw in enumerate(items):
                if index % LISTING_BATCH == LISTING_BATCH - 1:
                    await asyncio.sleep(0)  # let scrapes and stream events in between
                environment = self._decode(raw, request_id)
                if environment is None or not self.shard.owns(environment.name):
                    continue
                if environment.name in environments:
                    # Distinct upstream names that read the same (invalid UTF-8, lone surrogates, a cut):
                    # one label set must not get two series, so the first listed is kept.
                    self._drop("environment name listed twice (once made a label value)", request_id)
                    continue
                environments[environment.name] = environment
        except decode.InvalidJSON as error:
            if endpoint is not None:
                self.telemetry.failures.labels(SOURCE, endpoint, "decode").inc()
            message = f"{endpoint}: {error}" if endpoint else str(error)
            raise UpstreamError("decode", message, endpoint=endpoint or "", request_id=request_id) from None
        skipped = {name for name, environment in environments.items() if not self._keeps(environment)}
        for name in skipped:
            del environments[name]
        self._filtered = skipped
        self.status.objects_skipped(len(skipped))
        return environments

    def _keeps(self, environment: Environment) -> bool:
        """Whether this HQ's include/exclude filters export the environment."""
        return self.settings.selection.keeps({"environment": environment.name, "tier": environment.tier})

    def _decode(self, raw: Any, request_id: str) -> Environment | None:
        try:
            environment = decode_environment(raw, self.settings.metadata_labels)
        except InvalidEnvironment as error:
            self._drop(str(error), request_id)
            return None
        self._count_invalid_fields(environment, request_id)
        return environment

    def _count_invalid_fields(self, environment: Environment, request_id: str) -> None:
        """Count each field decoding dropped; log an environment's dropped fields when they change."""
        fields = environment.invalid_fields
        for name in fields:
            self.telemetry.invalid_fields.labels(SOURCE, self.target, name).inc()
        if self._invalid_fields_logged.get(environment.name, ()) == fields:
            return
        if not fields:
            del self._invalid_fields_logged[environment.name]
            return
        self._invalid_fields_logged[environment.name] = fields
        log.warning(
            "environment_field_invalid",
            target=self.target,
            environment=environment.name,
            fields=",".join(fields),
            request_id=request_id,
        )

    def _check_roundtrip_unit(self) -> None:
        """Warn once when most round trips, converted with the configured unit, are implausible."""
        if self._roundtrip_warned:
            return
        factor = ROUNDTRIP_UNITS[self.settings.roundtrip_duration_unit]
        low, high = PLAUSIBLE_ROUNDTRIP
        seconds = [
            environment.agent.roundtrip_duration * factor
            for environment in self._environments.values()
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

    def _drop(self, error: str, request_id: str) -> None:
        """Count an environment dropped whole, and log each distinct reason once."""
        self.telemetry.invalid_objects.labels(SOURCE, self.target).inc()
        if error not in self._invalid_logged:
            self._invalid_logged.add(error)
            log.warning("environment_dropped", target=self.target, error=error, request_id=request_id)

    async def _poll_connections(self, environments: dict[str, Environment]) -> None:
        limit = asyncio.Semaphore(max(1, self.settings.kafka_connections_concurrency))

        async def one(name: str) -> None:
            async with limit:
                try:
                    items = await self.client.list_kafka_connections(name)
                    decoded = (decode_kafka_connection(item) for item in items)
                    details = tuple(sorted({c for c in decoded if c is not None}))
                    self._connections[name] = (len(items), details)
                except UpstreamError as error:
                    self._connections.pop(name, None)
                    log.warning(
                        "kafka_connections_failed", target=self.target, environment=name, **error.log_fields()
                    )

        # A task group, not gather: a failure that is not an upstream's cancels the other counts instead of
        # leaving them running behind a restarted listing loop.
        async with asyncio.TaskGroup() as group:
            for name in environments:
                group.create_task(one(name))
        for name in set(self._connections) - set(environments):
            del self._connections[name]

    async def _apply_listing(self, environments: dict[str, Environment], started: float) -> None:
        """Make a complete listing the target's state. Changed environments are rendered first, yielding to
        the loop now and then; the swap itself is atomic. A stream change that arrived after the listing was
        requested wins over it, and a listing older than the one last applied is dropped."""
        prepared: dict[str, tuple[Environment, Rendered]] = {}
        now = time.time()
        for index, name in enumerate(environments):
            if index % LISTING_BATCH == LISTING_BATCH - 1:
                await asyncio.sleep(0)
            environment = environments[name] = self._with_connections(environments[name])
            held = self._environments.get(name)
            candidate = self._with_transitions(environment, held, now)
            # Most of a re-list is unchanged (the stream already brought the changes): render only the rest.
            if held != candidate:
                prepared[name] = (candidate, self._render(candidate))
        if started < self._listing_started:
            return
        self._listing_started = started
        for name, (changed_at, streamed) in list(self._stream_changes.items()):
            if changed_at >= started:
                if streamed is None:
                    environments.pop(name, None)
                else:
                    environments[name] = streamed
            else:
                del self._stream_changes[name]
        current: dict[str, Environment] = {}
        for name, listed in environments.items():
            held = self._environments.get(name)
            # Counted against the state held now: the stream may have changed it while this was prepared.
            environment = self._with_transitions(listed, held, now)
            if held is not None and held == environment:
                # The object already held stays: the listing's equal copy goes with the rest of the listing
                # instead of pinning the memory the listing's transients leave behind.
                current[name] = held
                continue
            current[name] = environment
            ready = prepared.get(name)
            # Rendered above unless a stream change replaced the listed environment since.
            rendered = ready[1] if ready and ready[0] == environment else self._render(environment)
            self.store.put(self.group, self.target, name, rendered)
        self.store.retain(self.group, self.target, current.keys())
        self._environments = current
        for name in self._invalid_fields_logged.keys() - current.keys():
            del self._invalid_fields_logged[name]

    def _with_connections(self, environment: Environment) -> Environment:
        known = self._connections.get(environment.name)
        if known is None or not self.settings.kafka_connections:
            return environment
        count, details = known
        if count == environment.kafka_connections and details == environment.kafka_connection_details:
            return environment
        return dataclasses.replace(environment, kafka_connections=count, kafka_connection_details=details)

    @staticmethod
    def _with_transitions(environment: Environment, held: Environment | None, now: float) -> Environment:
        """The environment carrying the connectivity changes counted so far (by the held state it replaces),
        plus one if its connectivity differs from the last known one."""
        if held is None:
            return (
                environment
                if environment.transitions == NO_TRANSITIONS
                else dataclasses.replace(environment, transitions=NO_TRANSITIONS)
            )
        transitions = held.transitions.after(held.agent_connected, environment.agent_connected, now)
        if transitions == environment.transitions:
            return environment
        return dataclasses.replace(environment, transitions=transitions)

    def _render(self, environment: Environment) -> Rendered:
        return self.group.render(self._for_group(environment), common_values(environment, self.target))

    def _for_group(self, environment: Environment) -> Environment:
        """The environment as the shared group reads it: its round trip in the group's unit and only this
        HQ's metadata keys (other HQs may allow more)."""
        agent = environment.agent
        if self._roundtrip_scale != 1.0 and agent is not None and agent.roundtrip_duration is not None:
            agent = dataclasses.replace(
                agent, roundtrip_duration=agent.roundtrip_duration * self._roundtrip_scale
            )
            environment = dataclasses.replace(environment, agent=agent)
        if self._strip_metadata and environment.metadata.keys() - self._metadata_keys:
            metadata = {
                key: value for key, value in environment.metadata.items() if key in self._metadata_keys
            }
            environment = dataclasses.replace(environment, metadata=metadata)
        return environment

    # -- live stream -----------------------------------------------------------------------------

    async def _stream_forever(self) -> None:
        try:
            await self._stream_until_failure()
        finally:  # a failure the supervisor sees, or shutdown: the stream is not open any more
            self._stream_state("reconnecting", 0)

    async def _stream_until_failure(self) -> None:
        parser = EventParser(self.settings.sse_max_event_bytes, self._invalid_event_id)
        failures = 0  # since the last event received: a stream that opens and then dies keeps backing off
        logged_error = ""  # the failure last logged, so a flapping stream logs once per change
        while True:
            self.telemetry.requests.labels(SOURCE, "stream").inc()
            opened = False
            try:
                async with connect_stream(
                    self.client.stream_http,
                    self.client.stream_url,
                    self.client.auth_headers(),
                    parser,
                    self.settings.deadline,
                ) as stream:
                    opened = True
                    if self._stream_opened_before:  # across restarts of this loop too
                        self.telemetry.sse_reconnects.labels(self.target).inc()
                    self._stream_opened_before = True
                    self._stream_state("connected", 1)
                    self.relist.set()
                    async for event in stream.events():
                        failures, logged_error = 0, ""
                        await self._on_event(event, stream.request_id)
                self._stream_state("reconnecting", 0)
                delay, wake_early = _retry_delay(parser, failures), False
            except StreamUnavailable as unavailable:
                if self.status.stream != "unavailable":
                    log.info(
                        "stream_unavailable",
                        target=self.target,
                        status=unavailable.status,
                        request_id=unavailable.request_id,
                        retry_in=self.settings.sse_unavailable_probe_interval,
                    )
                self._stream_state("unavailable", 0)
                delay, wake_early = self.settings.sse_unavailable_probe_interval, False
            except UpstreamError as error:
                memory.note_failure()
                failures += 1
                self.telemetry.failures.labels(SOURCE, "stream", error.reason).inc()
                if error.message != logged_error:
                    logged_error = error.message
                    log.warning(
                        "stream_failed", target=self.target, error=error.message, **error.log_fields()
                    )
                self._stream_state("reconnecting", 0)
                delay = error.retry_after if error.retry_after is not None else _retry_delay(parser, failures)
                # Only a stream that could not even open may be woken by a good listing: one that opens and
                # dies would otherwise loop through a re-list (each open asks for one) and a reconnect.
                wake_early = error.retry_after is None and not opened
            await self._reconnect_wait(delay, wake_early)

    async def _reconnect_wait(self, delay: float, wake_early: bool) -> None:
        """Wait before reconnecting; a backoff (not a wait the upstream asked for) ends early when a listing
        succeeds meanwhile: the upstream is back, so the stream need not lag the poll by up to a minute."""
        if not wake_early:
            await asyncio.sleep(delay)
            return
        self._listed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):  # not wait_for: see _poll_forever
                await self._listed.wait()

    def _invalid_event_id(self) -> None:
        self.telemetry.invalid_fields.labels(SOURCE, self.target, "last_event_id").inc()
        if "last_event_id" not in self._invalid_logged:
            self._invalid_logged.add("last_event_id")
            log.warning(
                "stream_event_id_dropped", target=self.target, reason="too long or not printable ASCII"
            )

    def _stream_state(self, state: str, connected: int) -> None:
        self.status.stream = state
        self.telemetry.sse_connected.labels(self.target).set(connected)

    async def _on_event(self, event: ServerSentEvent, request_id: str) -> None:
        name = event.event if event.event in KNOWN_EVENTS else "unknown"
        if event is OVERSIZE:
            name = "oversize"
        self.telemetry.sse_events.labels(self.target, name).inc()
        if name in ("unknown", "oversize"):
            return
        if name == "snapshot":
            try:
                items = decode.listing(event.data, "items")
                received = time.monotonic()
                environments = await self._decode_all(items, request_id, None)  # None: no fetch to count
            except (decode.InvalidJSON, UpstreamError) as error:
                self._invalid_event(name, str(error).replace("body", "snapshot", 1), request_id)
                return
            del items  # as in `sync_once`
            await self._apply_listing(environments, received)
            memory.settle_after_listing()
            self.status.objects_changed(len(self._environments))
            return
        try:
            data = decode.loads(event.data)
        except decode.InvalidJSON as error:
            self._invalid_event(name, str(error).replace("body", "data", 1), request_id)
            return
        if name == "environment_updated":
            environment = self._decode(data, request_id)
            if environment is not None and self.shard.owns(environment.name):
                if self._keeps(environment):
                    self._filtered.discard(environment.name)
                    self._put(environment)
                else:  # filtered out now (its tier may have changed): its series go
                    self._filtered.add(environment.name)
                    self._delete(environment.name)
                self.status.objects_skipped(len(self._filtered))
        else:
            # The name as the environment is held: made a label value the way `decode_environment` makes it.
            deleted = decode.as_label(data.get("name"), "name") if isinstance(data, dict) else None
            if deleted is None:
                self._invalid_event(name, "deletion has no `name`", request_id)
                return
            self._filtered.discard(deleted)
            self.status.objects_skipped(len(self._filtered))
            self._delete(deleted)

    def _invalid_event(self, event: str, error: str, request_id: str) -> None:
        self.telemetry.sse_events.labels(self.target, "invalid").inc()
        key = f"{event}: {error}"
        if key not in self._invalid_logged:
            self._invalid_logged.add(key)
            log.warning(  # not `event=`: structlog's own first argument
                "stream_event_dropped",
                target=self.target,
                stream_event=event,
                error=error,
                request_id=request_id,
            )

    def _put(self, environment: Environment) -> None:
        environment = self._with_connections(environment)
        held = self._environments.get(environment.name)
        environment = self._with_transitions(environment, held, time.time())
        self._stream_changes[environment.name] = (time.monotonic(), environment)
        if held == environment:
            return  # a repeated update: its series are already stored
        self._environments[environment.name] = environment
        self.store.put(self.group, self.target, environment.name, self._render(environment))
        self.status.objects_changed(len(self._environments))

    def _delete(self, name: str) -> None:
        self._environments.pop(name, None)
        self._invalid_fields_logged.pop(name, None)
        self._stream_changes[name] = (time.monotonic(), None)
        self.store.delete(self.group, self.target, name)
        self.status.objects_changed(len(self._environments))


def _retry_delay(parser: EventParser, failures: int) -> float:
    """The server's `retry:` after a clean close; capped exponential backoff with jitter after failures.
    A `retry:` above the backoff cap is capped too (a server cannot park the stream for a day), and none is
    shorter than `RECONNECT_FLOOR` (nor can it make the exporter reconnect in a busy loop)."""
    base = min(max((parser.retry_ms or 5000) / 1000.0, RECONNECT_FLOOR), RECONNECT_BACKOFF_MAX)
    if failures == 0:
        return base
    return max(
        RECONNECT_FLOOR, random.uniform(base / 2, min(RECONNECT_BACKOFF_MAX, base * 2 ** min(failures, 6)))
    )
