"""The items of a live-stream `snapshot` (`{"items": [Environment, ...]}`), decoded as the event's data
arrives. An item is held only until it is complete and decoded, and one longer than the cap is skipped (its
end found without holding it) and stands as `Undecodable`; so a snapshot of any size costs the memory of one
environment, not of the whole event. The rules are `decode.listing`'s: an item that cannot be decoded is
`Undecodable` and the others still decode; a structure broken between items fails the whole snapshot."""

from __future__ import annotations

import re
from typing import Any, Literal

from exporter import decode

OVERSIZE_REASON = "larger than the event cap"

_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_STOP = re.compile(r'["\\]')
_WHITESPACE = " \t\n\r"
_DELIMITERS = (" ", "\t", "\n", "\r", ",", "]")


class ValueEnd:
    """Finds where one JSON value ends, fed its text piece by piece and holding none of it: brackets are
    counted and strings skipped, the state carried across pieces."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def scan(self, text: str, index: int = 0) -> int | None:
        """Where the value ends in `text` (just after a container or a string, at the delimiter after a
        scalar), or None when it goes on past the end of `text`."""
        length = len(text)
        while index < length:
            if self.in_string:
                if self.escaped:
                    self.escaped, index = False, index + 1
                    continue
                found = _STRING_STOP.search(text, index)
                if found is None:
                    return None
                index = found.end()
                if found.group() == "\\":
                    self.escaped = True
                    continue
                self.in_string = False
                if self.depth == 0:
                    return index
                continue
            found = _STRUCTURE.search(text, index)
            if found is None:
                return None
            mark, index = found.group(), found.end()
            if mark == '"':
                self.in_string = True
            elif mark in "[{":
                self.depth += 1
            elif mark in "]}":
                if self.depth == 0:
                    return found.start()
                self.depth -= 1
                if self.depth == 0:
                    return index
            elif self.depth == 0:  # a comma after a scalar
                return found.start()
        return None


class ItemStream:
    """Feed the data of a `{key: [...]}` object as it arrives; `take()` the items completed so far (decoded
    JSON values, `decode.Undecodable` for those that could not be, or were over `max_item_chars`), and
    `finish()` at the end of the data, which raises `decode.InvalidJSON` when the structure is broken."""

    def __init__(self, key: str, max_item_chars: int, recogniser: decode.Recogniser | None = None) -> None:
        self.key = key
        self.max_item_chars = max_item_chars
        self.recogniser = recogniser
        self.fields: dict[str, Any] = {}
        self._state: Literal["start", "items", "skipping", "end", "broken"] = "start"
        self._pending: list[str] = []
        self._pending_chars = 0
        self._items: list[Any] = []
        self._after_item = False  # a comma or the closing bracket comes next
        self._count = 0  # items seen so far
        self._tried = 0  # characters of the pending item at its last failed decode: retried once doubled
        self._skipping = ValueEnd()
        self._error = ""

    def feed(self, text: str) -> None:
        """More of the data; an item completed by it is decoded now."""
        if self._state == "broken" or not text:
            return
        if self._state == "skipping":
            end = self._skipping.scan(text)
            if end is None:
                return
            self._items.append(decode.Undecodable(OVERSIZE_REASON))
            self._count += 1
            self._state, self._after_item, self._skipping = "items", True, ValueEnd()
            text = text[end:]
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._state == "items" and self._pending_chars < self._retry_at():
            return  # the item held cannot be complete yet: not worth joining its pieces
        self._advance(final=False)

    def take(self) -> list[Any]:
        """The items completed since the last call."""
        items, self._items = self._items, []
        return items

    def finish(self) -> None:
        """The data is complete: decode what is left and check the object closes properly."""
        if self._state not in ("broken", "skipping"):
            self._advance(final=True)
        if self._state == "end":
            try:
                decode.listing_end("".join(self._pending), 0, self.fields)
            except decode.InvalidJSON as error:
                self._broken(str(error))
        elif self._state != "broken":
            self._broken("body is cut short")
        self._pending = []
        if self._error:
            raise decode.InvalidJSON(self._error)

    def _broken(self, error: str) -> None:
        self._state, self._error = "broken", error
        self._pending, self._pending_chars = [], 0

    def _advance(self, final: bool) -> None:
        text = "".join(self._pending) if len(self._pending) > 1 else self._pending[0] if self._pending else ""
        index = 0
        if self._state == "start":
            try:
                index, self.fields = decode.listing_start(text, self.key)
            except decode.InvalidJSON:
                if final or len(text) > self.max_item_chars:
                    self._broken(f"body is not an object with an `{self.key}` list")
                return
            self._state = "items"
        if self._state == "items":
            index = self._items_from(text, index, final)
        if self._state == "end" and len(text) - index > self.max_item_chars:
            self._broken("body is not valid JSON")
        if self._state in ("broken", "skipping"):
            return
        rest = text[index:] if index else text
        self._pending, self._pending_chars = ([rest] if rest else []), len(rest)

    def _items_from(self, text: str, index: int, final: bool) -> int:
        """Decode every complete item from `index`; returns where the undecoded rest starts."""
        length = len(text)
        while True:
            while index < length and text[index] in _WHITESPACE:
                index += 1
            if index == length:
                return index
            mark = text[index]
            if mark == "]" and (self._after_item or self._count == 0):
                self._state = "end"
                return index + 1
            if self._after_item:
                if mark != ",":
                    self._broken("body is not valid JSON")
                    return index
                self._after_item = False
                index += 1
                continue
            remaining = length - index
            if not final and remaining < self._retry_at():
                return index
            index = self._one_item(text, index, final)
            if self._state != "items" or not self._after_item:
                return index

    def _retry_at(self) -> int:
        """How long the item held must have grown before decoding it is tried again: twice as long as at
        the last try (so a large item costs linear time however finely it arrives), or over the cap."""
        return min(2 * self._tried, self.max_item_chars + 1)

    def _one_item(self, text: str, index: int, final: bool) -> int:
        """Decode the item at `index`: returns where it ends, or `index` when it is not complete yet."""
        remaining = len(text) - index
        if self.recogniser is not None and (found := self.recogniser.recognise(text, index)) is not None:
            item, end = found
            self._items.append(item)
            self._count += 1
            self._after_item, self._tried = True, 0
            return end
        try:
            item, end = decode.DECODER.raw_decode(text, index)
        except RecursionError:
            return self._skip_from(text, index, "nested too deeply")
        except ValueError:
            if not final and remaining <= self.max_item_chars:
                self._tried = remaining
                return index
            return self._skip_from(text, index, "not valid JSON")
        else:
            if not final and text[end - 1] not in '}]"' and text[end : end + 1] not in _DELIMITERS:
                # A scalar the next piece may still continue (`12` of `12.5`, `tru` of `true`).
                self._tried = remaining
                return index
        if end - index > self.max_item_chars:
            item = decode.Undecodable(OVERSIZE_REASON)
        elif self.recogniser is not None:
            item = self.recogniser.fresh(item, text[index:end])
        self._items.append(item)
        self._count += 1
        self._after_item, self._tried = True, 0
        return end

    def _skip_from(self, text: str, index: int, reason: str) -> int:
        """Skip the item at `index`, which cannot be decoded: to its end when it is in `text`, else into the
        skipping state (the rest of the item is dropped as it arrives)."""
        self._tried = 0
        scanner = ValueEnd()
        end = scanner.scan(text, index)
        if end is None:
            self._state, self._skipping = "skipping", scanner
            self._pending, self._pending_chars = [], 0
            return len(text)
        too_long = end - index > self.max_item_chars
        self._items.append(decode.Undecodable(OVERSIZE_REASON if too_long else reason))
        self._count += 1
        self._after_item = True
        return end
