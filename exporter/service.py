"""Assembles sources, store and web server; runs them until SIGTERM/SIGINT and shuts down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Protocol

import structlog
from aiohttp import web

from exporter.config import (
    Settings,
    agent_label_name,
    metadata_label_name,
    shared_labels,
    split_listen_address,
)
from exporter.confluent import metrics as confluent_metrics
from exporter.confluent.sync import ConfluentSync
from exporter.exposition.compaction import Compactor
from exporter.exposition.store import Store
from exporter.health import Health
from exporter.lenses import metrics as lenses_metrics
from exporter.lenses.sync import LensesSync
from exporter.signals import IGNORED
from exporter.supervisor import supervise
from exporter.telemetry import Telemetry
from exporter.web.app import SERVER_LIMITS, make_app
from exporter.web.config import load_web_config

log = structlog.get_logger("exporter.service")

SHUTDOWN_GRACE = 3.0


class Source(Protocol):
    """A background sync of one upstream kind: `run` forever, `aclose` releases connections."""

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


class Exporter:
    """The running exporter: store, health, sources and the web server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.telemetry = Telemetry()
        self.health = Health(self.telemetry)
        hqs = settings.hqs
        keep = settings.metrics.keeps
        # Every HQ shares one set of families (a family's series must be contiguous): the round-trip unit
        # is the HQs' own when they agree, seconds otherwise, and the metadata labels are their union.
        units = {hq.roundtrip_duration_unit for hq in hqs}
        roundtrip_unit = units.pop() if len(units) == 1 else "s"
        metadata_labels = shared_labels([hq.metadata_labels for hq in hqs], metadata_label_name)
        lenses_group = lenses_metrics.build_group(roundtrip_unit, metadata_labels, keep)
        agent_labels = shared_labels(
            [target.labels for target in settings.confluent.targets], agent_label_name
        )
        confluent_group = confluent_metrics.build_group(agent_labels, keep)
        self.store = Store([lenses_group, confluent_group])
        self.compactor = Compactor(self.store)
        listing_slots = asyncio.Semaphore(LISTING_CONCURRENCY)
        self.sources: list[Source] = [
            LensesSync(
                hq,
                lenses_group,
                self.store,
                self.health,
                self.telemetry,
                settings.shard,
                group_roundtrip_unit=roundtrip_unit,
                group_metadata_labels=metadata_labels,
                listing_slots=listing_slots,
            )
            for hq in hqs
        ]
        if settings.confluent.targets:
            self.sources.append(
                ConfluentSync(
                    settings.confluent,
                    self.store,
                    self.health,
                    self.telemetry,
                    settings.shard,
                    confluent_group,
                )
            )
        self.web_config = load_web_config(settings.web.config_file)
        self.app = make_app(
            self.store,
            self.telemetry,
            self.health,
            self.web_config.middlewares,
            self.web_config.response_headers,
            telemetry_path=settings.web.telemetry_path,
        )
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.ports: list[int] = []

    @property
    def port(self) -> int:
        """The port of the first listen address (the one picked when it asked for port 0)."""
        return self.ports[0] if self.ports else 0

    async def start(self) -> None:
        """Bind every listen address and start every source in the background."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0, **SERVER_LIMITS)
        await self._runner.setup()
        try:
            for address in self.settings.web.listen_addresses:
                host, port = split_listen_address(address)
                site = web.TCPSite(self._runner, host or None, port, ssl_context=self.web_config.ssl_context)
                bound = len(self._runner.addresses)
                await site.start()
                added = self._runner.addresses[bound:]  # this site's sockets: the port 0 picked
                self.ports.append(added[0][1] if added else port)
        except BaseException:
            await self._runner.cleanup()
            raise
        # Each source supervises its own loops; the compactor has no target to mark down, only a count.
        self._tasks = [
            asyncio.create_task(_started_after(delay, source))
            for delay, source in zip(start_delays(len(self.sources)), self.sources, strict=True)
        ]
        compactor = supervise(
            "compactor", self.compactor.run, source="exporter", target="compactor", telemetry=self.telemetry
        )
        self._tasks.append(asyncio.create_task(compactor))
        freshness = supervise(
            "freshness",
            self.health.watch_freshness,
            source="exporter",
            target="freshness",
            telemetry=self.telemetry,
        )
        self._tasks.append(asyncio.create_task(freshness))
        log.info(
            "exporter_started",
            listen_address=self.settings.web.listen_address,
            port=self.port,
            listen_addresses=list(self.settings.web.listen_addresses),
            ports=self.ports,
            telemetry_path=self.settings.web.telemetry_path,
        )

    async def stop(self) -> None:
        """Cancel background work, close upstream connections, stop serving."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # `wait`, not `wait_for(gather(...))`: a task that does not end within the grace must not hold
            # the shutdown (wait_for would wait for the cancelled gather to finish, for ever).
            _, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_GRACE)
            if pending:
                log.warning("tasks_still_running", tasks=sorted(task.get_name() for task in pending))
        for source in self.sources:
            with contextlib.suppress(Exception):
                await source.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("exporter_stopped")


START_STEP = 0.2
"""Seconds between the starts of consecutive sources, so several HQs are not listed in the same instant."""

LISTING_CONCURRENCY = 4
"""Full HQ listings in flight at once, across every HQ: each can be hundreds of megabytes of JSON."""


def start_delays(count: int, step: float = START_STEP) -> list[float]:
    """The delay before each source starts: none for the first, one step more for each next one."""
    return [index * step for index in range(count)]


async def _started_after(delay: float, source: Source) -> None:
    if delay:
        await asyncio.sleep(delay)
    await source.run()


def _ignore(sig: signal.Signals) -> None:
    log.info("signal_ignored", signal=sig.name)


async def run_until_signal(
    settings: Settings,
    *,
    on_started: Callable[[Exporter], None] | None = None,
) -> None:
    """Run the exporter until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for sig in IGNORED:  # nothing to reload: secret files are re-read when they change
        loop.add_signal_handler(sig, _ignore, sig)
    exporter = Exporter(settings)
    await exporter.start()
    if on_started is not None:
        on_started(exporter)
    try:
        await stop.wait()
    finally:
        await exporter.stop()
