"""HQ's live stream, kept open: connecting (with `Last-Event-ID`), reading events with bounded memory
(framing in `exporter.lenses.framing`), and reconnecting after `retry:`, an idle timeout or a failure, with
capped exponential backoff. `LiveStream` yields the events and the stream's state changes; what they mean
for the exported state is the sync's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import httpx
from httpx_sse import aconnect_sse

from exporter.inflate import SLICE, InflateError, Inflater
from exporter.lenses.framing import Event, EventParser
from exporter.upstream import (
    UpstreamError,
    deadline_exceeded,
    http_error,
    read_bounded,
    request_id_of,
    transport_error,
)

RECONNECT_BACKOFF_MAX = 60.0
"""Seconds at most between two connections after failures (and the cap on a server's `retry:`)."""
RECONNECT_FLOOR = 0.5
"""Seconds at least between two connections of the stream, whatever `retry:` says."""


class StreamUnavailable(Exception):
    """The server has no live stream here (404 or 501): poll only."""

    def __init__(self, status: int, request_id: str) -> None:
        super().__init__(f"live stream answered HTTP {status}")
        self.status = status
        self.request_id = request_id


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

    async def events(self) -> AsyncIterator[Event]:
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


StreamState = Literal["opening", "connected", "reconnecting", "unavailable"]


@dataclass(frozen=True, slots=True)
class StreamChange:
    """A change of the live stream's state. `opening`: a connection is being attempted (the exported state
    stays what it was until it opens or fails); `connected`: open, with the upstream's request id;
    `reconnecting`: closed by the server (no `error`) or failed (`error`), the next attempt `retry_in`
    seconds away; `unavailable`: the server has no live stream (`unavailable`), probed again later."""

    state: StreamState
    request_id: str = ""
    error: UpstreamError | None = None
    unavailable: StreamUnavailable | None = None
    retry_in: float = 0.0


@dataclass
class LiveStream:
    """The live stream across connections: iterate `changes()` for its events and state changes, forever.

    A clean close waits the server's `retry:` before reconnecting; a failure backs off exponentially with
    jitter (failures counted since the last event received, so a stream that opens and dies keeps backing
    off) or waits the `Retry-After` the server sent. A backoff after a failure to open ends early when
    `woken` is set (the upstream answered meanwhile, e.g. a listing succeeded)."""

    client: httpx.AsyncClient
    url: str
    headers: Callable[[], dict[str, str]]
    parser: EventParser
    deadline: float | None
    unavailable_probe_interval: float
    woken: asyncio.Event
    request_id: str = ""

    async def changes(self) -> AsyncGenerator[Event | StreamChange]:
        """Events as they arrive, with a `StreamChange` at each change of state; never ends by itself."""
        failures = 0
        while True:
            yield StreamChange("opening")
            opened = False
            try:
                async with connect_stream(
                    self.client, self.url, self.headers(), self.parser, self.deadline
                ) as stream:
                    opened, self.request_id = True, stream.request_id
                    yield StreamChange("connected", stream.request_id)
                    async for event in stream.events():
                        failures = 0
                        yield event
                delay, wake_early = retry_delay(self.parser.retry_ms, failures), False
                yield StreamChange("reconnecting", retry_in=delay)
            except StreamUnavailable as unavailable:
                delay, wake_early = self.unavailable_probe_interval, False
                yield StreamChange(
                    "unavailable", unavailable.request_id, unavailable=unavailable, retry_in=delay
                )
            except UpstreamError as error:
                failures += 1
                delay = (
                    error.retry_after
                    if error.retry_after is not None
                    else retry_delay(self.parser.retry_ms, failures)
                )
                # Only a stream that could not even open may be woken early: one that opens and dies would
                # otherwise loop through a re-list (each open asks for one) and a reconnect.
                wake_early = error.retry_after is None and not opened
                yield StreamChange("reconnecting", error.request_id, error=error, retry_in=delay)
            await self._wait(delay, wake_early)

    async def _wait(self, delay: float, wake_early: bool) -> None:
        """Wait before reconnecting; a backoff (not a wait the upstream asked for) ends early when `woken`
        is set meanwhile: the upstream is back, so the stream need not lag the poll by up to a minute."""
        if not wake_early:
            await asyncio.sleep(delay)
            return
        self.woken.clear()
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as the
            # event is set, and a loop that cannot be cancelled hangs the shutdown.
            async with asyncio.timeout(delay):
                await self.woken.wait()


def retry_delay(retry_ms: int | None, failures: int) -> float:
    """The server's `retry:` after a clean close; capped exponential backoff with jitter after failures.
    A `retry:` above the backoff cap is capped too (a server cannot park the stream for a day), and none is
    shorter than `RECONNECT_FLOOR` (nor can it make the exporter reconnect in a busy loop)."""
    base = min(max((retry_ms or 5000) / 1000.0, RECONNECT_FLOOR), RECONNECT_BACKOFF_MAX)
    if failures == 0:
        return base
    return max(
        RECONNECT_FLOOR, random.uniform(base / 2, min(RECONNECT_BACKOFF_MAX, base * 2 ** min(failures, 6)))
    )
