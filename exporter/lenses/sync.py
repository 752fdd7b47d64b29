"""The Lenses list + watch loop: a full re-list on a timer and after every stream (re)connect, the live
stream's events applied in between, and the store updated one environment at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from prometheus_client import Counter

from exporter import decode, memory
from exporter.config import LensesSettings
from exporter.exposition.compaction import join_waiting
from exporter.exposition.families import FamilyGroup, Rendered
from exporter.exposition.store import Store
from exporter.health import Health, stale_after
from exporter.lenses.client import SOURCE, LensesClient
from exporter.lenses.connections import KafkaConnections
from exporter.lenses.framing import OVERSIZE, Event, EventParser, SnapshotEnd, SnapshotItems
from exporter.lenses.intake import Intake
from exporter.lenses.model import INVALID_FIELDS, Environment, with_transitions
from exporter.lenses.recognition import Recognition, RecognitionPass
from exporter.lenses.rendering import EnvironmentRenderer
from exporter.lenses.stream import RECONNECT_BACKOFF_MAX, LiveStream, StreamChange
from exporter.sharding import Shard
from exporter.supervisor import supervise
from exporter.telemetry import Telemetry
from exporter.upstream import LISTING_BATCH, UpstreamError

log = structlog.get_logger("exporter.lenses")

KNOWN_EVENTS = ("snapshot", "environment_updated", "environment_deleted")
COUNTED_EVENTS = (*KNOWN_EVENTS, "unknown", "oversize", "invalid")
"""Every `event` label of `lenses_hq_exporter_sse_events_total`."""
SNAPSHOT_WAIT = 10.0
"""Seconds at most a snapshot arriving on the stream waits for a listing in flight to finish first."""
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
        self.renderer = EnvironmentRenderer(settings, group, group_roundtrip_unit, group_metadata_labels)
        self._listing_slots = listing_slots or asyncio.Semaphore(1)
        """Shared by every HQ's sync: bounds the full listings in flight at once."""
        self.status = health.register(
            SOURCE, self.target, stale_after(settings.poll_interval, settings.deadline)
        )
        self.client = LensesClient(settings, telemetry)
        self.intake = Intake(settings, telemetry, self.status, self.shard)
        self.recognition = Recognition(lambda name: self._environments.get(name))
        self._snapshot_pass: RecognitionPass | None = None  # recognising a snapshot's items as they arrive
        self.connections = KafkaConnections(settings, self.client)
        self.relist = asyncio.Event()
        self._not_listing = asyncio.Event()  # clear while a listing is in flight
        self._not_listing.set()
        self._listed = asyncio.Event()  # set by a successful listing: a stream backing off tries again now
        self._environments: dict[str, Environment] = {}
        self._stream_changes: dict[str, tuple[float, Environment | None]] = {}
        self._listing_started = float("-inf")  # when the listing applied last was requested
        self.status.stream = "connecting" if settings.sse else "disabled"
        self._stream_opened_before = False
        self._snapshot: tuple[float, dict[str, Environment]] | None = None
        """A snapshot still arriving on the stream: when it started, and its environments decoded so far."""
        telemetry.start_endpoint(SOURCE, "environments")
        if settings.kafka_connections:
            telemetry.start_endpoint(SOURCE, "kafka_connections")
        self._event_counters: dict[str, Counter] = {}
        if settings.sse:
            telemetry.start_endpoint(SOURCE, "stream")
            self._event_counters = telemetry.start_stream(self.target, COUNTED_EVENTS)
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
            # asyncio.timeout, not wait_for: see `LiveStream._wait`.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self.relist.wait()
            # A re-list asked for early (every stream reconnect asks) waits out the shortest gap: a stream
            # that reconnects many times a second must not list the whole HQ as often.
            await asyncio.sleep(max(0.0, started + shortest_gap - clock()))

    async def sync_once(self) -> bool:
        """One full listing, applied only when complete; returns whether it succeeded."""
        self._not_listing.clear()
        try:
            return await self._list_and_apply()
        finally:
            self._not_listing.set()

    async def _list_and_apply(self) -> bool:
        started_wall = time.monotonic()
        try:
            async with self._listing_slots:
                items, request_id = await self.client.list_environments()
                recognising = items.recogniser = self.recognition.start()
                with memory.collection_paused():
                    environments = await self.intake.decode_all(items, request_id, recognising=recognising)
                recognising.finish()
        except UpstreamError as error:
            self.status.failed(error.message, time.monotonic() - started_wall, **error.log_fields())
            return False
        del items  # the raw JSON goes before rendering, so the new state reuses its memory
        if self.settings.kafka_connections:
            await self.connections.poll(environments)
        await self._apply_whole(environments, started_wall, recognising)
        self.intake.check_roundtrip_unit(self._environments.values())
        self.status.succeeded(time.monotonic() - started_wall, len(self._environments))
        self._listed.set()
        return True

    async def _apply_listing(
        self, environments: dict[str, Environment], started: float, recognising: RecognitionPass | None = None
    ) -> None:
        """Make a complete listing the target's state. Changed environments are rendered first, yielding to
        the loop now and then; the swap itself is atomic. A stream change that arrived after the listing was
        requested wins over it, and a listing older than the one last applied is dropped."""
        prepared: dict[str, tuple[Environment, Rendered]] = {}
        now = time.time()
        with self.renderer.preparing():
            for index, name in enumerate(environments):
                if index % LISTING_BATCH == LISTING_BATCH - 1:
                    await asyncio.sleep(0)
                environment = environments[name] = self.connections.added_to(environments[name])
                held = self._environments.get(name)
                candidate = with_transitions(environment, held, now)
                # Most of a re-list is unchanged (the stream already brought the changes): render the rest.
                if held != candidate:
                    prepared[name] = self.renderer.prepare(candidate)
        if started < self._listing_started:
            return
        self._listing_started = started
        overridden = set()
        for name, (changed_at, streamed) in list(self._stream_changes.items()):
            if changed_at >= started:
                overridden.add(name)
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
            environment = with_transitions(listed, held, now)
            if held is not None and held == environment:
                # The object already held stays: the listing's equal copy goes with the rest of the listing
                # instead of pinning the memory the listing's transients leave behind.
                current[name] = held
                continue
            current[name] = environment
            ready = prepared.get(name)
            # Rendered above unless a stream change replaced the listed environment since.
            rendered = ready[1] if ready and ready[0] == environment else self.renderer.render(environment)
            self.store.put(self.group, self.target, name, rendered)
        self.store.retain(self.group, self.target, current.keys())
        self._environments = current
        self.intake.retain(current.keys())
        self.recognition.applied(current.keys(), recognising.seen if recognising else {}, overridden)

    # -- live stream -----------------------------------------------------------------------------

    async def _stream_forever(self) -> None:
        try:
            await self._stream_until_failure()
        finally:  # a failure the supervisor sees, or shutdown: the stream is not open any more
            self._stream_state("reconnecting", 0)

    async def _stream_until_failure(self) -> None:
        stream = LiveStream(
            self.client.stream_http,
            self.client.stream_url,
            self.client.auth_headers,
            EventParser(
                self.settings.sse_max_event_bytes, self.intake.invalid_event_id, self._recognise_snapshot
            ),
            self.settings.deadline,
            self.settings.sse_unavailable_probe_interval,
            woken=self._listed,
        )
        logged_error = ""  # the failure last logged, so a flapping stream logs once per change
        async with contextlib.aclosing(stream.changes()) as changes:
            async for change in changes:
                if isinstance(change, StreamChange):
                    self._snapshot = None  # a snapshot cut short by a reconnect is never applied
                    logged_error = self._on_stream_change(change, logged_error)
                else:
                    logged_error = ""
                    await self._on_event(change, stream.request_id)

    def _recognise_snapshot(self) -> RecognitionPass:
        self._snapshot_pass = self.recognition.start()
        return self._snapshot_pass

    def _on_stream_change(self, change: StreamChange, logged_error: str) -> str:
        """Count, log and export a change of the stream's state; returns the failure now logged last."""
        if change.state == "opening":
            self.telemetry.requests.labels(SOURCE, "stream").inc()
        elif change.state == "connected":
            if self._stream_opened_before:  # across restarts of this loop too
                self.telemetry.sse_reconnects.labels(self.target).inc()
            self._stream_opened_before = True
            self._stream_state("connected", 1)
            self.relist.set()
        elif change.unavailable is not None:
            if self.status.stream != "unavailable":
                log.info(
                    "stream_unavailable",
                    target=self.target,
                    status=change.unavailable.status,
                    request_id=change.unavailable.request_id,
                    retry_in=change.retry_in,
                )
            self._stream_state("unavailable", 0)
        else:
            error = change.error
            if error is not None:
                memory.note_failure()
                self.telemetry.failures.labels(SOURCE, "stream", error.reason).inc()
                if error.message != logged_error:
                    logged_error = error.message
                    log.warning(
                        "stream_failed", target=self.target, error=error.message, **error.log_fields()
                    )
            self._stream_state("reconnecting", 0)
        return logged_error

    async def _apply_whole(
        self, environments: dict[str, Environment], started: float, recognising: RecognitionPass | None = None
    ) -> None:
        """Apply a complete listing or snapshot, with the collector paused, and settle the memory after."""
        with memory.collection_paused():
            await self._apply_listing(environments, started, recognising)
        await join_waiting(self.store)
        memory.settle_after_listing()
        self.status.objects_changed(len(self._environments))

    def _stream_state(self, state: str, connected: int) -> None:
        self.status.stream = state
        self.telemetry.sse_connected.labels(self.target).set(connected)

    async def _on_event(self, event: Event, request_id: str) -> None:
        if isinstance(event, SnapshotItems):  # decoded as they arrive; applied when the snapshot ends
            if self._snapshot is None:
                self._snapshot = (time.monotonic(), {})
            if not self._not_listing.is_set():
                # A listing in flight brings the same environments: let it finish first (the stream waits,
                # unread, meanwhile) rather than decoding both at half speed.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SNAPSHOT_WAIT):
                        await self._not_listing.wait()
            with memory.collection_paused():
                for raw in event.items:
                    self.intake.add(self._snapshot[1], raw, request_id, self._snapshot_pass)
            return
        streamed, self._snapshot = self._snapshot, None  # whatever comes next ends a snapshot
        name = event.event if event.event in KNOWN_EVENTS else "unknown"
        if event is OVERSIZE:
            name = "oversize"
        self._event_counters[name].inc()
        if name in ("unknown", "oversize"):
            return
        if isinstance(event, SnapshotEnd):
            if event.error:
                self.intake.invalid_event(name, event.error.replace("body", "snapshot", 1), request_id)
                return
            started, environments = streamed or (time.monotonic(), {})
            recognising, self._snapshot_pass = self._snapshot_pass, None
            if recognising is not None:
                recognising.finish()
            await self._apply_whole(self.intake.selected(environments), started, recognising)
            return
        if name == "snapshot":  # its `event:` line came after its data: it was held whole
            try:
                items = decode.listing(event.data, "items")
                received = time.monotonic()
                # No endpoint: no fetch to count.
                environments = await self.intake.decode_all(items, request_id, None)
            except (decode.InvalidJSON, UpstreamError) as error:
                self.intake.invalid_event(name, str(error).replace("body", "snapshot", 1), request_id)
                return
            del items  # as in `sync_once`
            await self._apply_whole(environments, received)
            return
        try:
            data = decode.loads(event.data)
        except decode.InvalidJSON as error:
            self.intake.invalid_event(name, str(error).replace("body", "data", 1), request_id)
            return
        if name == "environment_updated":
            environment = self.intake.decode(data, request_id)
            if environment is not None and self.shard.owns(environment.name):
                if self.intake.keeps(environment):
                    self.intake.filtered.discard(environment.name)
                    self._put(environment, event.data)
                else:  # filtered out now (its tier may have changed): its series go
                    self.intake.filtered.add(environment.name)
                    self._delete(environment.name)
                self.status.objects_skipped(len(self.intake.filtered))
        else:
            # The name as the environment is held: made a label value the way `decode_environment` makes it.
            deleted = decode.as_label(data.get("name"), "name") if isinstance(data, dict) else None
            if deleted is None:
                self.intake.invalid_event(name, "deletion has no `name`", request_id)
                return
            self.intake.filtered.discard(deleted)
            self.status.objects_skipped(len(self.intake.filtered))
            self._delete(deleted)

    def _put(self, environment: Environment, text: str) -> None:
        """An environment decoded from a stream event's `text`, applied."""
        environment = self.connections.added_to(environment)
        held = self._environments.get(environment.name)
        environment = with_transitions(environment, held, time.time())
        self._stream_changes[environment.name] = (time.monotonic(), environment)
        self.recognition.learned(environment.name, text)
        if held == environment:
            return  # a repeated update: its series are already stored
        self._environments[environment.name] = environment
        rendered = (
            self.renderer.render(environment)
            if held is None
            else self.renderer.render_changes(environment, held)  # held is what the store holds
        )
        self.store.put(self.group, self.target, environment.name, rendered)
        self.status.objects_changed(len(self._environments))

    def _delete(self, name: str) -> None:
        self._environments.pop(name, None)
        self.intake.forget(name)
        self._stream_changes[name] = (time.monotonic(), None)
        self.recognition.forget(name)
        self.store.delete(self.group, self.target, name)
        self.status.objects_changed(len(self._environments))
