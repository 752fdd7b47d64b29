"""Polling Confluent Flink agents: every owned target on its own interval, a bounded number at once, first
polls staggered; a complete listing replaces the target's agents in the store, a failed one changes only
its health."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable

import httpx
import structlog

from exporter import memory
from exporter.config import ConfluentSettings, ConfluentTarget
from exporter.confluent import metrics
from exporter.confluent.client import (
    ENDPOINT,
    SOURCE,
    AgentListing,
    ConfluentClient,
    Sleep,
    connection_settings,
    http_client_for,
)
from exporter.confluent.model import FlinkAgent, InvalidAgent, decode_agent
from exporter.exposition.compaction import join_waiting
from exporter.exposition.families import FamilyGroup, Rendered
from exporter.exposition.store import Store
from exporter.health import Health, TargetStatus, stale_after
from exporter.sharding import Shard
from exporter.supervisor import supervise
from exporter.telemetry import Telemetry
from exporter.upstream import LISTING_BATCH, UpstreamError

log = structlog.get_logger("exporter.confluent")

START_STEP = 0.2
"""Seconds between the first polls of consecutive targets (each with jitter inside its slot)."""

INTERVAL_JITTER = 0.1
"""Each poll interval is stretched or shrunk by up to this fraction, so targets do not fall into step."""


def start_delays(
    count: int, poll_interval: float, rng: random.Random, step: float = START_STEP
) -> list[float]:
    """Delays before each target's first poll: one slot of `step` seconds per target, a random point inside
    it, and the whole spread no longer than one poll interval."""
    if count <= 0:
        return []
    slot = min(step, poll_interval / count)
    return [(index + rng.random()) * slot for index in range(count)]


def next_interval(poll_interval: float, rng: random.Random) -> float:
    """The wait until a target's next poll: its interval with a little jitter."""
    return poll_interval * (1 + rng.uniform(-INTERVAL_JITTER, INTERVAL_JITTER))


class ConfluentSync:
    """Polls every configured Confluent target this shard owns and keeps its agents in the store."""

    def __init__(
        self,
        settings: ConfluentSettings,
        store: Store,
        health: Health,
        telemetry: Telemetry,
        shard: Shard | None = None,
        group: FamilyGroup[FlinkAgent] | None = None,
    ) -> None:
        self.settings = settings
        self.group = group or metrics.GROUP
        self.store = store
        self.telemetry = telemetry
        self.targets = tuple(t for t in settings.targets if shard is None or shard.owns(t.name))
        self.status: dict[str, TargetStatus] = {
            t.name: health.register(SOURCE, t.name, stale_after(t.poll_interval, t.deadline))
            for t in self.targets
        }
        if self.targets:
            telemetry.start_endpoint(SOURCE, ENDPOINT)
        for target in self.targets:
            telemetry.start_target(SOURCE, target.name)
        # Targets with the same timeout, TLS and proxy share one httpx client: its connections are reused
        # across targets on the same regional endpoint, and fifty targets do not build fifty TLS contexts.
        self._http: dict[tuple[object, ...], httpx.AsyncClient] = {}
        self.clients: dict[str, ConfluentClient] = {}
        for target in self.targets:
            key = connection_settings(target)
            if key not in self._http:
                self._http[key] = http_client_for(target)
            self.clients[target.name] = ConfluentClient(
                target, telemetry, http=self._http[key], sleep=self._wait_without_slot
            )
        self.last_listing: dict[str, AgentListing] = {}
        self._phases: dict[str, dict[str, tuple[str | None, int]]] = {}
        """Per target and agent key: the last known phase and the changes counted so far."""
        self._invalid_logged: dict[str, int] = {}
        self.rng = random.Random()
        self.start_step = START_STEP
        self.pause: Sleep = asyncio.sleep  # between polls; tests record the schedule instead
        self._limit = asyncio.Semaphore(max(1, settings.concurrency))
        self._retry_sleep: Sleep = asyncio.sleep

    def set_retry_sleep(self, sleep: Sleep | None) -> None:
        """Replace how retries wait (None: `asyncio.sleep`); tests record the waits instead of waiting."""
        self._retry_sleep = sleep or asyncio.sleep

    async def _wait_without_slot(self, seconds: float) -> None:
        """A retry wait (Retry-After can be minutes) lends the target's slot to the others meanwhile."""
        self._limit.release()
        try:
            await self._retry_sleep(seconds)
        finally:
            await self._limit.acquire()  # cancelled here only at shutdown, when the count no longer matters

    async def run(self) -> None:
        """Poll forever; one task per target."""
        if not self.targets:
            await asyncio.Event().wait()
            return
        shortest = min(t.poll_interval for t in self.targets)
        delays = start_delays(len(self.targets), shortest, self.rng, self.start_step)
        async with asyncio.TaskGroup() as group:
            for target, delay in zip(self.targets, delays, strict=True):
                # Each target on its own: a bug met by one does not stop the other targets' polls.
                supervised = supervise(
                    "poll",
                    self._poller(target, delay),
                    source=SOURCE,
                    target=target.name,
                    telemetry=self.telemetry,
                    status=self.status[target.name],
                    max_backoff=target.poll_interval,
                )
                group.create_task(supervised, name=f"confluent:{target.name}")

    def _poller(self, target: ConfluentTarget, delay: float) -> Callable[[], Awaitable[None]]:
        """The target's poll loop; the first start waits its staggered delay, a restart does not."""
        first = [delay]

        async def poll_forever() -> None:
            if first:
                await self.pause(first.pop())
            while True:
                await self.poll(target)
                await self.pause(next_interval(target.poll_interval, self.rng))

        return poll_forever

    async def poll(self, target: ConfluentTarget) -> bool:
        """List the target's agents once (waiting for a free slot) and apply the listing only when it is
        complete; returns whether it succeeded."""
        status = self.status[target.name]
        async with self._limit:
            started = time.monotonic()
            try:
                listing = await self.clients[target.name].list_agents()
            except UpstreamError as error:
                status.failed(error.message, time.monotonic() - started, **error.log_fields())
                return False
        # What it took, without the raw agents (at ten thousand agents they would pin tens of megabytes).
        summary = self.last_listing[target.name] = dataclasses.replace(listing, items=[])
        rendered: dict[str, Rendered] = {}
        previous_phases = self._phases.get(target.name, {})
        phases: dict[str, tuple[str | None, int]] = {}
        invalid = 0
        skipped = 0
        for index, raw in enumerate(listing.items):
            if index % LISTING_BATCH == LISTING_BATCH - 1:
                await asyncio.sleep(0)  # ten thousand agents take half a second: let scrapes in between
            cuts: list[str] = []
            try:
                agent = decode_agent(raw, cuts)
            except InvalidAgent:
                invalid += 1
                continue
            for field in cuts:
                self.telemetry.invalid_fields.labels(SOURCE, target.name, field).inc()
            if agent.key in rendered:  # names that read the same once made label values: the first is kept
                invalid += 1
                continue
            if not target.selection.keeps({"agent": agent.name, "kafka_cluster_id": agent.kafka_cluster_id}):
                skipped += 1
                continue
            agent = _with_phase_changes(agent, previous_phases.get(agent.key), phases)
            rendered[agent.key] = self.group.render(
                _own_labels(agent, target), metrics.common_values(target, agent)
            )
        del listing  # the raw agents go before the store changes, so the new state reuses their memory
        if invalid:
            self.telemetry.invalid_objects.labels(SOURCE, target.name).inc(invalid)
        if invalid != self._invalid_logged.get(target.name, 0):
            # Logged when the number of undecodable agents changes, not at every poll.
            self._invalid_logged[target.name] = invalid
            log.warning(
                "agents_dropped",
                source=SOURCE,
                target=target.name,
                invalid=invalid,
                request_ids=",".join(summary.request_ids[:10]),
            )
        self.store.replace(self.group, target.name, rendered)
        status.objects_skipped(skipped)
        self._phases[target.name] = phases  # agents gone lose their count with their series
        agents = len(rendered)
        del rendered  # transient: not to be frozen, and its memory to be given back
        status.succeeded(time.monotonic() - started, agents)
        log.debug(
            "listing_applied",
            source=SOURCE,
            target=target.name,
            agents=agents,
            invalid=invalid,
            pages=summary.pages,
            attempts=summary.attempts,
            waited_seconds=summary.waited,
        )
        await join_waiting(self.store)
        memory.settle_after_listing()
        return True

    async def aclose(self) -> None:
        """Close every target's connections."""
        for http in self._http.values():
            with contextlib.suppress(Exception):
                await http.aclose()


def _own_labels(agent: FlinkAgent, target: ConfluentTarget) -> FlinkAgent:
    """The agent with only the `metadata.labels` keys its target allows (the family is shared by targets
    that may allow more)."""
    if not agent.labels:
        return agent
    allowed = set(target.labels)
    kept = tuple((key, value) for key, value in agent.labels if key in allowed)
    return agent if len(kept) == len(agent.labels) else dataclasses.replace(agent, labels=kept)


def _with_phase_changes(
    agent: FlinkAgent,
    previous: tuple[str | None, int] | None,
    phases: dict[str, tuple[str | None, int]],
) -> FlinkAgent:
    """The agent with its phase changes counted: a known phase other than the last known one is a change;
    an unknown phase changes nothing. Records the agent's state in `phases`."""
    last_known, changes = previous if previous is not None else (None, 0)
    if agent.phase is not None:
        if last_known is not None and agent.phase != last_known:
            changes += 1
        last_known = agent.phase
    phases[agent.key] = (last_known, changes)
    return dataclasses.replace(agent, phase_changes=changes) if changes else agent
