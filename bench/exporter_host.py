"""The exporter under test in its own process, built from a configuration file as `run --config.file`
builds it, plus instruments the harness reads on a separate control port:

- update latency: from the moment the exporter reads the chunk of the live stream that holds an
  `environment_updated` event (the stream parser's `feed` is called) to the moment the event's handler has
  returned, i.e. the store holds the environment's new series and the next scrape serves them; also the
  handler alone, and the simulator's own timestamp in the event (`status.agent.updated_at`, written when it
  generated the change, truncated to the millisecond) to that same moment;
- event-loop stalls: how late a 5 ms sleep wakes up (a scrape or a re-list holding the loop delays every
  event behind it);
- timed re-lists: `sync_once()` called in-process, its wall and CPU time, split into fetch (HTTP and JSON
  parsing), decode and apply (render and store).

Recording uses rings allocated at start, so the instruments do not grow the memory being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bench.common import Ring, announce, summary_ms, until_terminated
from exporter.config import load_settings
from exporter.confluent.sync import ConfluentSync
from exporter.lenses import stream as lenses_stream
from exporter.lenses.sync import LensesSync
from exporter.logs import configure_logging
from exporter.service import Exporter

RING_SIZE = 1 << 17
LOOP_PROBE_INTERVAL = 0.005
STAMP = re.compile(r'"updated_at":"([^"]+)"')
T = TypeVar("T")


class Instruments:
    """Latency rings, the event count, and the last duration of each re-list step."""

    def __init__(self) -> None:
        self.apply = Ring(RING_SIZE)
        self.handler = Ring(RING_SIZE)
        self.stamped = Ring(RING_SIZE)
        self.loop_lag = Ring(RING_SIZE)
        self.events = 0
        self.received = 0.0
        self.steps: dict[str, float] = {}

    def reset(self) -> None:
        """Start a new measurement window (the event count keeps running)."""
        for ring in (self.apply, self.handler, self.stamped, self.loop_lag):
            ring.clear()

    def stats(self) -> dict[str, Any]:
        """Every figure of the current window."""
        return {
            "events": self.events,
            "apply": summary_ms(self.apply.values()),
            "handler": summary_ms(self.handler.values()),
            "stamped": summary_ms(self.stamped.values()),
            "loop_lag": summary_ms(self.loop_lag.values()),
            "cpu_seconds": time.process_time(),
        }

    def watch_stream(self, sync: LensesSync) -> None:
        """Time every `environment_updated` event from the read of its chunk to its handler's return."""
        parser_feed = lenses_stream.EventParser.feed

        def feed(parser: lenses_stream.EventParser, chunk: bytes) -> list[Any]:
            self.received = time.perf_counter()
            return parser_feed(parser, chunk)

        lenses_stream.EventParser.feed = feed  # type: ignore[method-assign, assignment]
        handle = sync._on_event

        def on_event(event: Any, request_id: str) -> None:
            started = time.perf_counter()
            handle(event, request_id)
            if event.event != "environment_updated":
                return
            done, wall = time.perf_counter(), time.time()
            self.events += 1
            self.apply.add(done - self.received)
            self.handler.add(done - started)
            stamp = STAMP.search(event.data)
            if stamp is not None:
                with contextlib.suppress(ValueError):
                    self.stamped.add(wall - datetime.fromisoformat(stamp.group(1)).timestamp())

        sync._on_event = on_event  # type: ignore[method-assign]

    def time_steps(self, sync: LensesSync) -> None:
        """Record the duration of each step of a listing: fetch, decode, apply."""
        list_environments = sync.client.list_environments

        async def fetch() -> Any:
            return await self._timed_async("fetch", list_environments)

        sync.client.list_environments = fetch  # type: ignore[method-assign]
        for step, attribute in (("decode", "_decode_all"), ("apply", "_apply_listing")):
            function = getattr(sync, attribute, None)
            if function is not None:
                setattr(sync, attribute, self._timed(step, function))

    async def _timed_async(self, step: str, function: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await function()
        finally:
            self.steps[step] = time.perf_counter() - started

    def _timed(self, step: str, function: Callable[..., T]) -> Callable[..., T]:
        def timed(*arguments: Any) -> T:
            started = time.perf_counter()
            try:
                return function(*arguments)
            finally:
                self.steps[step] = time.perf_counter() - started

        return timed

    async def watch_loop(self) -> None:
        """Record how late each short sleep wakes up."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_PROBE_INTERVAL)
            self.loop_lag.add(max(0.0, loop.time() - before - LOOP_PROBE_INTERVAL))


def control_app(exporter: Exporter, instruments: Instruments) -> web.Application:
    """The harness's view into the process: stats, window reset, timed re-lists and polls."""
    lenses = next((s for s in exporter.sources if isinstance(s, LensesSync)), None)
    confluent = next((s for s in exporter.sources if isinstance(s, ConfluentSync)), None)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(instruments.stats())

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"events": instruments.events})

    async def reset(request: web.Request) -> web.Response:
        instruments.reset()
        return web.json_response(instruments.stats())

    async def relist(request: web.Request) -> web.Response:
        if lenses is None:
            raise web.HTTPNotFound(text="no Lenses source")
        runs = []
        for _ in range(int(request.query.get("count", "3"))):
            instruments.steps.clear()
            started, started_cpu = time.perf_counter(), time.process_time()
            succeeded = await lenses.sync_once()
            runs.append(
                {
                    "succeeded": succeeded,
                    "wall_seconds": time.perf_counter() - started,
                    "cpu_seconds": time.process_time() - started_cpu,
                    **{f"{step}_seconds": seconds for step, seconds in instruments.steps.items()},
                }
            )
        return web.json_response({"runs": runs})

    async def poll(request: web.Request) -> web.Response:
        if confluent is None:
            raise web.HTTPNotFound(text="no Confluent source")
        runs = []
        for target in confluent.targets:
            started, started_cpu = time.perf_counter(), time.process_time()
            succeeded = await confluent.poll(target)
            runs.append(
                {
                    "target": target.name,
                    "succeeded": succeeded,
                    "wall_seconds": time.perf_counter() - started,
                    "cpu_seconds": time.process_time() - started_cpu,
                }
            )
        return web.json_response({"runs": runs})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/events", events)
    app.router.add_post("/reset", reset)
    app.router.add_post("/relist", relist)
    app.router.add_post("/poll", poll)
    return app


async def serve(config: Path) -> None:
    """Start the exporter and the control port; stop on SIGTERM."""
    settings = load_settings(config)
    configure_logging("warning", "json", settings.secret_values)
    exporter = Exporter(settings)
    instruments = Instruments()
    for source in exporter.sources:
        if isinstance(source, LensesSync):
            instruments.watch_stream(source)
            instruments.time_steps(source)
    await exporter.start()
    control = web.AppRunner(control_app(exporter, instruments), access_log=None)
    await control.setup()
    site = web.TCPSite(control, "127.0.0.1", 0)
    await site.start()
    watcher = asyncio.create_task(instruments.watch_loop())
    announce(port=exporter.port, control_port=control.addresses[0][1])
    try:
        await until_terminated()
    finally:
        watcher.cancel()
        await control.cleanup()
        await exporter.stop()


def main() -> None:
    """`python -m bench.exporter_host CONFIG`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path)
    asyncio.run(serve(parser.parse_args().config))


if __name__ == "__main__":
    main()
