"""The Lenses HQ live stream: a hub that numbers events, frames each one once for every subscriber, and
serves `GET /v1/environments/live/sse` (snapshot on connect, then updates, keepalive comments), with the
stream faults (stall, cut, drops, garbage, odd line endings, multi-line data, unknown events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from exporter.simulator.faults import Faults

MAX_PENDING = 200_000  # events queued for one slow subscriber before it is disconnected
GARBAGE_LINES = (
    b"this line has no colon",
    b"x-unknown-field: 42",
    b": a comment \xc3\xa9\xe2\x82\xac",
    b"retry: soon",
)
UNKNOWN_EVENT_DATA = b'{"from":"old-name","to":"new-name"}'


@dataclass
class Event:
    """One numbered event; its framings are cached so every subscriber shares the same bytes."""

    id: int
    name: str
    data: bytes
    cut: bool = False
    _frames: dict[tuple[str, bool, bool], bytes] = field(default_factory=dict, repr=False)

    def frame(self, line_ending: str, multiline: bool, garbage: bool) -> bytes:
        """The event's bytes on the wire in the given framing."""
        key = (line_ending, multiline, garbage)
        framed = self._frames.get(key)
        if framed is None:
            framed = self._frames[key] = _frame(self, line_ending.encode(), multiline, garbage)
        return framed


def _frame(event: Event, ending: bytes, multiline: bool, garbage: bool) -> bytes:
    lines: list[bytes] = list(GARBAGE_LINES) if garbage else []
    lines.append(b"id: %d" % event.id)
    lines.append(b"event: " + event.name.encode())
    for part in _data_lines(event.data, multiline):
        lines.append(b"data: " + part)
    return ending.join(lines) + ending + ending


def _data_lines(data: bytes, multiline: bool) -> list[bytes]:
    if not multiline:
        return [data]
    try:
        decoded = json.loads(data)
    except ValueError:
        middle = len(data) // 2
        return [data[:middle], data[middle:]]
    return json.dumps(decoded, indent=1).encode().split(b"\n")


class Subscriber:
    """One open stream: its queue of events or raw bytes, and a wake-up signal."""

    def __init__(self) -> None:
        self.pending: deque[Event | bytes] = deque()
        self.wake = asyncio.Event()
        self.closed = False

    def push(self, item: Event | bytes) -> None:
        """Queue an item; a subscriber too far behind is closed (the client will reconnect)."""
        if len(self.pending) >= MAX_PENDING:
            self.close()
            return
        self.pending.append(item)
        self.wake.set()

    def close(self) -> None:
        """End the stream at the next opportunity."""
        self.closed = True
        self.wake.set()


class Hub:
    """Numbers and fans out events to every open stream."""

    def __init__(self, faults: Faults, keepalive_interval: float, retry_ms: int) -> None:
        self.faults = faults
        self.keepalive_interval = keepalive_interval
        self.retry_ms = retry_ms
        self.subscribers: set[Subscriber] = set()
        self.last_id = 0
        self.published = 0
        self.connections = 0
        self.closing = False

    def next_id(self) -> int:
        """The next event id (monotonic across all streams)."""
        self.last_id += 1
        return self.last_id

    def publish(self, name: str, data: bytes) -> None:
        """Send an event to every open stream (framed once, shared by all)."""
        self.published += 1
        if not self.subscribers:
            return
        event = Event(self.next_id(), name, data)
        if self.faults.sse_cut_next:
            self.faults.sse_cut_next = False
            event.cut = True
        items: list[Event] = [event]
        if self.faults.sse_unknown_events:
            items.append(Event(self.next_id(), "environment_renamed", UNKNOWN_EVENT_DATA))
        for subscriber in self.subscribers:
            for item in items:
                subscriber.push(item)

    def send_raw(self, raw: bytes) -> int:
        """Send raw bytes to every open stream; returns the number of streams."""
        for subscriber in self.subscribers:
            subscriber.push(raw)
        return len(self.subscribers)

    def close(self) -> None:
        """End every open stream (server shutdown)."""
        self.closing = True
        for subscriber in list(self.subscribers):
            subscriber.close()

    async def serve(
        self, request: web.Request, snapshot: Callable[[], bytes], headers: dict[str, str]
    ) -> web.StreamResponse:
        """Stream to one client until it leaves, the server stops, or a fault ends the connection."""
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers},
        )
        await response.prepare(request)
        subscriber = Subscriber()
        if self.closing:
            subscriber.close()
        self.subscribers.add(subscriber)
        self.connections += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            if self.faults.sse_stall:
                await self._stall(request, subscriber)
                return response
            faults = self.faults
            event = Event(self.next_id(), "snapshot", snapshot())
            if faults.sse_cut_next:
                faults.sse_cut_next = False
                event.cut = True
            ending = faults.sse_line_ending
            retry = b"retry: %d" % self.retry_ms + ending.encode()
            if not await self._write(request, response, retry, [event]):
                return response
            while not subscriber.closed:
                timeout = self.keepalive_interval if self.keepalive_interval > 0 else None
                if faults.sse_drop_interval > 0:
                    remaining = started + faults.sse_drop_interval - loop.time()
                    if remaining <= 0:
                        break
                    timeout = remaining if timeout is None else min(timeout, remaining)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await subscriber.wake.wait()
                subscriber.wake.clear()
                if subscriber.closed:
                    break
                if faults.sse_stall:
                    await self._stall(request, subscriber)
                    break
                if faults.sse_drop_interval > 0 and loop.time() >= started + faults.sse_drop_interval:
                    break
                items = list(subscriber.pending)
                subscriber.pending.clear()
                if not items:
                    items_bytes = b": keepalive" + faults.sse_line_ending.encode()
                    if not await self._write(request, response, items_bytes, []):
                        break
                    continue
                if not await self._write(request, response, b"", items):
                    break
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.subscribers.discard(subscriber)
        return response

    async def _write(
        self, request: web.Request, response: web.StreamResponse, prefix: bytes, items: list[Event | bytes]
    ) -> bool:
        """Write a batch; False when the connection is gone (or was cut on purpose)."""
        faults = self.faults
        chunks = [prefix] if prefix else []
        for item in items:
            if isinstance(item, bytes):
                chunks.append(item)
                continue
            framed = item.frame(faults.sse_line_ending, faults.sse_multiline_data, faults.sse_garbage)
            if item.cut:
                chunks.append(framed[: max(1, len(framed) // 2)])
                await response.write(b"".join(chunks))
                if request.transport is not None:
                    request.transport.close()
                return False
            chunks.append(framed)
        await response.write(b"".join(chunks))
        return True

    async def _stall(self, request: web.Request, subscriber: Subscriber) -> None:
        """Keep the connection open and send nothing until the client leaves or the server stops."""
        while not subscriber.closed and request.transport is not None and not request.transport.is_closing():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await subscriber.wake.wait()
            subscriber.wake.clear()
            subscriber.pending.clear()
