"""The exporter under test in its own process, built from a configuration file as `run --config.file`
builds it, plus instruments the harness reads on a separate control port:

- update latency: from the moment the exporter reads the chunk of the live stream that holds an
  `environment_updated` event (the stream parser's `feed` is called) to the moment the event's handler has
  returned, i.e. the store holds the environment's new series and the next scrape serves them; also the
  handler alone, and the simulator's own timestamp in the event (`status.agent.updated_at`, written when it
  generated the change, truncated to the millisecond) to that same moment;
- event-loop stalls: how late a 5 ms sleep wakes up (a scrape or a re-list holding the loop delays every
  event behind it);
- garbage collection: every collection's pause (full ones apart), and how many objects the collector tracks;
- timed re-lists: `sync_once()` called in-process, its wall and CPU time, split into fetch (HTTP and JSON
  parsing), decode and apply (render and store);
- memory the allocator holds but the objects do not: RSS before and after `gc.collect()` and glibc's
  `malloc_trim(0)` (called once, at the end).

Recording uses rings allocated at start, so the instruments do not grow the memory being measured. The
harness turns the probes off (`POST /probes?on=0`) while it measures the exporter's own CPU: then only
updates are counted, and nothing wakes the event loop but the exporter's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import inspect
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import Ring, announce, rss_bytes, summary_ms, until_terminated
from exporter.config import load_settings
from exporter.confluent.sync import ConfluentSync
from exporter.lenses import framing as lenses_framing
from exporter.lenses.sync import LensesSync
from exporter.logs import configure_logging
from exporter.service import Exporter

RING_SIZE = 1 << 16
GC_RING_SIZE = 1 << 13
LOOP_PROBE_INTERVAL = 0.005
WORST_STALLS = 10
WORST_STALL_FLOOR = 0.05
STAMP = re.compile(r'"updated_at":"([^"]+)"')


class Instruments:
    """Latency rings, the event count, and the last duration of each re-list step."""

    def __init__(self) -> None:
        self.apply = Ring(RING_SIZE)
        self.handler = Ring(RING_SIZE)
        self.stamped = Ring(RING_SIZE)
        self.loop_lag = Ring(RING_SIZE)
        self.gc_pauses = Ring(GC_RING_SIZE)
        self.gc_full_pauses = Ring(GC_RING_SIZE)
        self.worst_stalls: list[tuple[float, float]] = []
        self._gc_started = 0.0
        self.events = 0
        self.received = 0.0
        self.steps: dict[str, float] = {}
        self.probing = asyncio.Event()
        """Set while latencies and loop stalls are recorded; else updates are only counted."""
        self.probing.set()

    def reset(self) -> None:
        """Start a new measurement window (the event count keeps running)."""
        for ring in (
            self.apply,
            self.handler,
            self.stamped,
            self.loop_lag,
            self.gc_pauses,
            self.gc_full_pauses,
        ):
            ring.clear()
        self.worst_stalls.clear()

    def stats(self) -> dict[str, Any]:
        """Every figure of the current window."""
        return {
            "events": self.events,
            "apply": summary_ms(self.apply.values()),
            "handler": summary_ms(self.handler.values()),
            "stamped": summary_ms(self.stamped.values()),
            "loop_lag": summary_ms(self.loop_lag.values()),
            "worst_stalls": [
                {"at": at, "ms": round(seconds * 1000, 1)}
                for seconds, at in sorted(self.worst_stalls, reverse=True)
            ],
            "gc_pauses": summary_ms(self.gc_pauses.values()),
            "gc_full_pauses": summary_ms(self.gc_full_pauses.values()),
            "cpu_seconds": time.process_time(),
        }

    def watch_stream(self, sync: LensesSync) -> None:
        """Time every `environment_updated` event from the read of its chunk to its handler's return."""
        parser_feed = lenses_framing.EventParser.feed

        def feed(parser: lenses_framing.EventParser, chunk: bytes) -> list[Any]:
            self.received = time.perf_counter()
            return parser_feed(parser, chunk)

        lenses_framing.EventParser.feed = feed  # type: ignore[method-assign, assignment]
        handle: Callable[..., Any] = sync._on_event

        # The handler may be a plain function or a coroutine function: wrap it as what it is.
        if inspect.iscoroutinefunction(handle):

            async def on_event_async(event: Any, request_id: str) -> None:
                received, started = self.received, time.perf_counter()
                await handle(event, request_id)
                self._record(event, received, started)

            sync._on_event = on_event_async  # type: ignore[method-assign, assignment, unused-ignore]
        else:

            def on_event(event: Any, request_id: str) -> None:
                received, started = self.received, time.perf_counter()
                handle(event, request_id)
                self._record(event, received, started)

            sync._on_event = on_event  # type: ignore[method-assign, assignment]

    def _record(self, event: Any, received: float, started: float) -> None:
        if event.event != "environment_updated":
            return
        self.events += 1
        if not self.probing.is_set():
            return
        done, wall = time.perf_counter(), time.time()
        self.apply.add(done - received)
        self.handler.add(done - started)
        stamp = STAMP.search(event.data)
        if stamp is not None:
            with contextlib.suppress(ValueError):
                self.stamped.add(wall - datetime.fromisoformat(stamp.group(1)).timestamp())

    def time_steps(self, sync: LensesSync) -> None:
        """Record the duration of each step of a listing: fetch, decode, apply (each may be a plain or a
        coroutine function)."""
        self._wrap(sync.client, "list_environments", "fetch")
        self._wrap(sync.intake, "decode_all", "decode")
        self._wrap(sync, "_apply_listing", "apply")

    def _wrap(self, owner: object, attribute: str, step: str) -> None:
        function: Callable[..., Any] | None = getattr(owner, attribute, None)
        if function is None:
            return
        if inspect.iscoroutinefunction(function):

            async def timed_async(*arguments: Any, **keywords: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await function(*arguments, **keywords)
                finally:
                    self.steps[step] = time.perf_counter() - started

            setattr(owner, attribute, timed_async)
        else:

            def timed(*arguments: Any, **keywords: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(*arguments, **keywords)
                finally:
                    self.steps[step] = time.perf_counter() - started

            setattr(owner, attribute, timed)

    async def watch_loop(self) -> None:
        """Record how late each short sleep wakes up, and when the worst ones happened (wall clock)."""
        loop = asyncio.get_running_loop()
        while True:
            await self.probing.wait()
            before = loop.time()
            await asyncio.sleep(LOOP_PROBE_INTERVAL)
            late = max(0.0, loop.time() - before - LOOP_PROBE_INTERVAL)
            self.loop_lag.add(late)
            if late > WORST_STALL_FLOOR:
                self.worst_stalls.append((late, time.time()))
                self.worst_stalls.sort(reverse=True)
                del self.worst_stalls[WORST_STALLS:]

    def watch_gc(self) -> None:
        """Record the duration of every garbage collection (full ones, generation 2, apart too)."""

        def callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self._gc_started = time.perf_counter()
                return
            pause = time.perf_counter() - self._gc_started
            self.gc_pauses.add(pause)
            if info.get("generation") == 2:
                self.gc_full_pauses.add(pause)

        gc.callbacks.append(callback)


def control_app(exporter: Exporter, instruments: Instruments) -> web.Application:
    """The harness's view into the process: stats, window reset, timed re-lists and polls."""
    lenses = next((s for s in exporter.sources if isinstance(s, LensesSync)), None)
    confluent = next((s for s in exporter.sources if isinstance(s, ConfluentSync)), None)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(instruments.stats())

    async def events(request: web.Request) -> web.Response:
        return web.json_response({"events": instruments.events})

    async def probes(request: web.Request) -> web.Response:
        if request.query.get("on", "1") == "1":
            instruments.probing.set()
        else:
            instruments.probing.clear()
        return web.json_response({"probing": instruments.probing.is_set()})

    async def reset(request: web.Request) -> web.Response:
        instruments.reset()
        return web.json_response(instruments.stats())

    async def relist(request: web.Request) -> web.Response:
        if lenses is None:
            raise web.HTTPNotFound(text="no Lenses source")
        runs = []
        for _ in range(int(request.query.get("count", "3"))):
            instruments.steps.clear()
            # Every item decoded, as when HQ's timestamps move between listings: the recognition of unchanged
            # items would make this a best case.
            lenses.recognition.prints.clear()
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

    async def garbage(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "tracked_objects": len(gc.get_objects()),
                "frozen_objects": gc.get_freeze_count(),
                "thresholds": gc.get_threshold(),
            }
        )

    async def trim(request: web.Request) -> web.Response:
        before = rss_bytes(os.getpid())
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        return web.json_response({"rss_before_bytes": before, "rss_after_bytes": rss_bytes(os.getpid())})

    app = web.Application()
    app.router.add_get("/gc", garbage)
    app.router.add_post("/trim", trim)
    app.router.add_get("/stats", stats)
    app.router.add_get("/events", events)
    app.router.add_post("/reset", reset)
    app.router.add_post("/probes", probes)
    app.router.add_post("/relist", relist)
    app.router.add_post("/poll", poll)
    return app


async def serve(config: Path) -> None:
    """Start the exporter and the control port; stop on SIGTERM."""
    settings = load_settings(config)
    configure_logging("warning", "json", settings.secret_values)
    exporter = Exporter(settings)
    instruments = Instruments()
    instruments.watch_gc()
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
