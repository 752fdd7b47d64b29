"""Reading HQ's live Server-Sent-Events stream with bounded memory.

httpx-sse opens the stream (`aconnect_sse` sets the SSE request headers) and its `ServerSentEvent` is the
event type, but its line and event decoders buffer without limit and drop the partial-event state we need,
so the framing below is our own: it follows the WHATWG event-stream rules (`\\n`, `\\r\\n` or `\\r` line ends,
comments, multi-line `data:`, `id:` carried over, `retry:`) and never holds more than `max_event_bytes` of one
event; a larger event is skipped whole and reported as `OVERSIZE`.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from exporter.inflate import SLICE, InflateError, Inflater
from exporter.upstream import (
    UpstreamError,
    deadline_exceeded,
    http_error,
    read_bounded,
    request_id_of,
    transport_error,
)

OVERSIZE: Final = ServerSentEvent(event="oversize")
"""Stands in for an event that was larger than the cap and was dropped."""

_LINE_END = re.compile(r"\r\n|\r|\n")


class StreamUnavailable(Exception):
    """The server has no live stream here (404 or 501): poll only."""

    def __init__(self, status: int, request_id: str) -> None:
        super().__init__(f"live stream answered HTTP {status}")
        self.status = status
        self.request_id = request_id


MAX_EVENT_ID = 256
"""The longest `id:` kept to be sent back as `Last-Event-ID`."""


def usable_event_id(value: str) -> bool:
    """Whether an `id:` can go back in a `Last-Event-ID` header: short, printable ASCII (the empty id, which
    resets it, included). Anything else would fail or bloat every reconnect."""
    return len(value) <= MAX_EVENT_ID and value.isascii() and (value.isprintable() or not value)


class EventParser:
    """Incremental, bounded event-stream parser: feed bytes, get complete events. An `id:` that cannot be
    sent back (see `usable_event_id`) resets the last event id and is reported to `on_invalid_id`."""

    def __init__(self, max_event_bytes: int, on_invalid_id: Callable[[], None] = lambda: None) -> None:
        self.max_event_bytes = max_event_bytes
        self.on_invalid_id = on_invalid_id
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self.new_connection()

    def new_connection(self) -> None:
        """Forget a half-received event (a connection that broke mid-event); keep the id and `retry:`."""
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []
        self._partial_size = 0
        self._pending_cr = False
        self._reset_event()
        self._discarding = False
        self._dropping_line = False  # the start of the current line was dropped (too large)

    def _reset_event(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._size = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse a chunk; returns the events it completed (OVERSIZE for each dropped one)."""
        text = self._text.decode(chunk)
        if not text:  # an empty chunk, or half a character: a pending \r waits for what follows
            return []
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        pieces = _LINE_END.split(text)
        events: list[ServerSentEvent] = []
        for piece in pieces[:-1]:
            if self._dropping_line:  # the end of a dropped line, not a blank line
                self._dropping_line = False
                continue
            if self._partial:
                self._partial.append(piece)
                piece = "".join(self._partial)
                self._partial, self._partial_size = [], 0
            self._line(piece, events)
        tail = pieces[-1]
        if tail and not self._partial and tail.startswith(":"):
            self._dropping_line = True  # a comment, ignored whatever its length
        elif tail and not self._dropping_line:
            self._partial_size += len(tail)
            if self._partial_size + self._size > self.max_event_bytes:
                # A line that alone exceeds the cap: forget it, skip the rest of its event.
                self._partial, self._partial_size = [], 0
                self._start_discarding()
                self._dropping_line = True
            elif self._discarding:
                self._partial_size = 0
                self._dropping_line = True
            else:
                self._partial.append(tail)
        return events

    def _start_discarding(self) -> None:
        self._reset_event()
        self._discarding = True

    def _line(self, line: str, events: list[ServerSentEvent]) -> None:
        if not line:
            if self._discarding:
                self._discarding = False
                events.append(OVERSIZE)
            elif self._has_data:
                events.append(
                    ServerSentEvent(
                        event=self._event or "message",
                        data="\n".join(self._data),
                        id=self.last_event_id,
                        retry=self.retry_ms,
                    )
                )
            self._reset_event()
            return
        if self._discarding or line.startswith(":"):
            return
        self._size += len(line)
        if self._size > self.max_event_bytes:
            self._start_discarding()
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if usable_event_id(value):
                self.last_event_id = value
            else:
                self.last_event_id = ""  # reconnect without one: the re-list after it catches up
                self.on_invalid_id()
        # isdigit() alone admits "²", which int() refuses; and int() refuses more than 4300 digits.
        elif name == "retry" and value.isascii() and value.isdigit() and len(value) <= 18:
            self.retry_ms = int(value)


MAX_BYTES_PER_SECOND = 16 * 1024 * 1024
"""Decompressed bytes per second of wall time a stream may average; HQ sends a few kilobytes a second."""
BURST_BYTES = 64 * 1024 * 1024
"""Decompressed bytes a stream may send on top of that average (a large snapshot right after connecting)."""


@dataclass
class OpenStream:
    """An open live stream: the upstream's request id, and its events as they arrive."""

    request_id: str
    response: httpx.Response
    parser: EventParser

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """Events until the server closes the stream; read failures raise `UpstreamError`, and so does a
        stream that inflates too far or sends more than `MAX_BYTES_PER_SECOND` on average (beyond
        `BURST_BYTES`). Decompressed bytes are parsed a slice at a time, with a turn of the event loop in
        between, so even a stream of blank lines cannot hold the loop."""
        try:
            inflater = Inflater(self.response.headers.get("content-encoding", ""))
        except InflateError as error:
            raise self._error("decode", f"stream: {error}") from None
        clock = asyncio.get_running_loop().time
        opened = clock()
        parsed_since_yield = 0
        try:
            async for raw in self.response.aiter_raw():
                for piece in inflater.feed(raw):
                    for event in self.parser.feed(piece):
                        yield event
                    if inflater.inflated > BURST_BYTES + MAX_BYTES_PER_SECOND * (clock() - opened):
                        raise self._error(
                            "too_large", f"stream: more than {MAX_BYTES_PER_SECOND} bytes a second"
                        )
                    parsed_since_yield += len(piece)
                    if parsed_since_yield >= SLICE:  # small events arrive one read each: no turn needed
                        parsed_since_yield = 0
                        await asyncio.sleep(0)
        except InflateError as error:
            raise self._error(error.reason, f"stream: {error}") from None
        except httpx.TransportError as error:
            raise transport_error(
                "stream", error, self.request_id, timeout="no byte within the idle timeout"
            ) from None

    def _error(self, reason: str, message: str) -> UpstreamError:
        return UpstreamError(
            reason, message, endpoint="stream", status=self.response.status_code, request_id=self.request_id
        )


@asynccontextmanager
async def connect_stream(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    parser: EventParser,
    deadline: float | None = None,
) -> AsyncIterator[OpenStream]:
    """Open the live stream, sending `Last-Event-ID` when the parser has seen one; opening (connect and
    headers) must complete within `deadline` seconds, after which only the idle timeout applies.

    Raises `StreamUnavailable` on 404/501 and `UpstreamError` on any other failure to open.
    """
    parser.new_connection()
    if parser.last_event_id:
        headers = {**headers, "Last-Event-ID": parser.last_event_id}
    try:
        async with asyncio.timeout(deadline) as opening:
            async with aconnect_sse(client, "GET", url, headers=headers) as source:
                response = source.response
                request_id = request_id_of(response)
                if response.status_code in (404, 501):
                    raise StreamUnavailable(response.status_code, request_id)
                if response.status_code >= 400:
                    raise http_error("stream", response, await _read_some(response))
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise UpstreamError(
                        "content_type",
                        f"stream: expected text/event-stream, got {content_type.split(';')[0][:60]!r}",
                        endpoint="stream",
                        status=response.status_code,
                        request_id=request_id,
                    )
                opening.reschedule(None)
                yield OpenStream(request_id, response, parser)
    except TimeoutError:
        if deadline is None or not opening.expired():
            raise
        raise deadline_exceeded("stream", deadline) from None
    except httpx.TransportError as error:
        raise transport_error("stream", error, timeout="timed out opening") from None


async def _read_some(response: httpx.Response, limit: int = 65536) -> bytes:
    """At most `limit` bytes of an error body (enough for its request id)."""
    return await read_bounded(response, limit, "stream", truncate=True)
