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
from dataclasses import dataclass
from typing import Any, Final

from httpx_sse import ServerSentEvent

from exporter import decode
from exporter.lenses.snapshot import ItemStream

OVERSIZE: Final = ServerSentEvent(event="oversize")
"""Stands in for an event that was larger than the cap and was dropped."""


@dataclass(frozen=True, slots=True)
class SnapshotItems:
    """Items of a `snapshot` event still arriving: decoded JSON values, `Undecodable` for those that could
    not be decoded or were larger than the cap. None of them holds until the `SnapshotEnd` that follows."""

    items: list[Any]
    event: str = "snapshot"


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    """The end of a `snapshot` event whose items came as `SnapshotItems`: `error` says why the snapshot is
    invalid as a whole (then none of its items may be applied)."""

    error: str = ""
    id: str = ""
    event: str = "snapshot"


Event = ServerSentEvent | SnapshotItems | SnapshotEnd
"""What the parser completes: a whole event, or a piece of a snapshot streamed item by item."""

_LINE_END = re.compile(r"\r\n|\r|\n")


MAX_EVENT_ID = 256
"""The longest `id:` kept to be sent back as `Last-Event-ID`."""


def usable_event_id(value: str) -> bool:
    """Whether an `id:` can go back in a `Last-Event-ID` header: short, printable ASCII (the empty id, which
    resets it, included). Anything else would fail or bloat every reconnect."""
    return len(value) <= MAX_EVENT_ID and value.isascii() and (value.isprintable() or not value)


class EventParser:
    """Incremental, bounded event-stream parser: feed bytes, get complete events. An `id:` that cannot be
    sent back (see `usable_event_id`) resets the last event id and is reported to `on_invalid_id`.

    The data of a `snapshot` event (one whose `event:` line comes before its data) is not held whole: its
    items are decoded as they arrive, each capped at `max_event_bytes` on its own, and come out as
    `SnapshotItems` then a `SnapshotEnd`."""

    def __init__(
        self,
        max_event_bytes: int,
        on_invalid_id: Callable[[], None] = lambda: None,
        recogniser: Callable[[], decode.Recogniser | None] = lambda: None,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self.on_invalid_id = on_invalid_id
        self.recogniser = recogniser
        """Called as each streamed snapshot begins: what recognises its items (see `ItemStream`)."""
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
        self._streaming_line = False  # the current line is snapshot data, fed to the items as it arrives
        self._strip_space = False  # the current snapshot data line's value has not started yet

    def _reset_event(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._has_data = False
        self._size = 0
        self._snapshot: ItemStream | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse a chunk; returns the events it completed (OVERSIZE for each dropped one)."""
        text = self._text.decode(chunk)
        if not text:  # an empty chunk, or half a character: a pending \r waits for what follows
            return []
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        # Lines end with a line feed alone in practice: `str.split` finds those many times faster.
        pieces = _LINE_END.split(text) if "\r" in text else text.split("\n")
        events: list[Event] = []
        for piece in pieces[:-1]:
            if self._dropping_line:  # the end of a dropped line, not a blank line
                self._dropping_line = False
                continue
            if self._streaming_line:
                self._snapshot_data(piece)
                self._streaming_line = False
                continue
            if self._partial:
                self._partial.append(piece)
                piece = "".join(self._partial)
                self._partial, self._partial_size = [], 0
            if not self._snapshot_line(piece):
                self._line(piece, events)
        tail = pieces[-1]
        if self._streaming_line:
            self._snapshot_data(tail)
        elif tail and not self._partial and tail.startswith(":"):
            self._dropping_line = True  # a comment, ignored whatever its length
        elif tail and not self._dropping_line:
            self._partial_size += len(tail)
            if self._wants_snapshot_data() and self._snapshot_tail(tail):
                pass
            elif self._partial_size + self._size > self.max_event_bytes:
                # A line that alone exceeds the cap: forget it, skip the rest of its event.
                self._partial, self._partial_size = [], 0
                self._start_discarding()
                self._dropping_line = True
            elif self._discarding:
                self._partial_size = 0
                self._dropping_line = True
            else:
                self._partial.append(tail)
        self._flush_snapshot(events)
        return events

    def _snapshot_line(self, line: str) -> bool:
        """Feed `line` (whole, or the start of one) to the snapshot's items when it is snapshot data."""
        if not (self._wants_snapshot_data() and (line.startswith("data:") or line == "data")):
            return False
        if self._snapshot is None:
            self._snapshot = ItemStream("items", self.max_event_bytes, self.recogniser())
        else:
            self._snapshot.feed("\n")  # data lines are joined by line feeds
        self._has_data, self._strip_space = True, True
        self._snapshot_data(line[len("data:") :])
        return True

    def _snapshot_tail(self, tail: str) -> bool:
        """Take the start of a line that is snapshot data (streamed from now on) or may still become it
        (held until it can be told); False when it is not, or was told apart before."""
        if self._partial_size - len(tail) >= len("data:"):
            return False
        line = "".join(self._partial) + tail
        if len(line) < len("data:") and "data:".startswith(line):
            self._partial.append(tail)
            return True
        if not self._snapshot_line(line):
            return False
        self._partial, self._partial_size = [], 0
        self._streaming_line = True
        return True

    def _wants_snapshot_data(self) -> bool:
        """Whether a data line now is a snapshot's, streamed: `event: snapshot` came before any data."""
        return (
            self._event == "snapshot"
            and not self._discarding
            and (self._snapshot is not None or not self._has_data)
        )

    def _snapshot_data(self, value: str) -> None:
        if self._strip_space and value:
            self._strip_space = False
            value = value[1:] if value.startswith(" ") else value
        if self._snapshot is not None:
            self._snapshot.feed(value)

    def _flush_snapshot(self, events: list[Event]) -> None:
        if self._snapshot is not None and (items := self._snapshot.take()):
            events.append(SnapshotItems(items))

    def _start_discarding(self) -> None:
        self._reset_event()
        self._discarding = True

    def _line(self, line: str, events: list[Event]) -> None:
        if not line:
            if self._snapshot is not None:
                self._flush_snapshot(events)
                error = ""
                try:
                    self._snapshot.finish()
                except decode.InvalidJSON as invalid:
                    error = str(invalid)
                self._flush_snapshot(events)
                events.append(SnapshotEnd(error, self.last_event_id))
            elif self._discarding:
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
