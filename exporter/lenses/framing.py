"""The live stream's framing: Server-Sent-Events parsed with bounded memory.

httpx-sse's `ServerSentEvent` is the event type, but its line and event decoders buffer without limit and
drop the partial-event state we need, so the framing below is our own: it follows the WHATWG
event-stream rules (`\\n`, `\\r\\n` or `\\r` line ends, comments, multi-line `data:`, `id:` carried over,
`retry:`) and never holds more than `max_event_bytes` of one event; a larger event is skipped whole and
reported as `OVERSIZE`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import Final

from httpx_sse import ServerSentEvent

OVERSIZE: Final = ServerSentEvent(event="oversize")
"""Stands in for an event that was larger than the cap and was dropped."""

_LINE_END = re.compile(r"\r\n|\r|\n")


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
