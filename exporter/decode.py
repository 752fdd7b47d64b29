"""Tolerant decoding of what upstreams send: JSON bodies that can neither crash nor balloon the exporter,
and readers for the loosely typed values inside them.

Every upstream JSON document goes through `loads` (a whole small document) or `listing` (a listing whose
items are decoded one at a time). Both read invalid UTF-8 as U+FFFD instead of failing the body, read an
integer literal too long for `int` (over 4,300 digits) as a float (infinite, so dropped by `as_number`), and
turn nesting deeper than the interpreter's recursion limit into a decode error: the C scanner checks its
depth before each level, and its `RecursionError`, which is not a `ValueError`, is caught here. In a listing,
an item that cannot be decoded becomes `Undecodable` and the other items still decode.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

EARLIEST_TIMESTAMP = 946684800.0
"""2000-01-01T00:00:00Z: an earlier time (Go's zero time `0001-01-01T00:00:00Z`, the Unix epoch) means
"never", not a moment, and is read as absent."""

MAX_NUMBER_TEXT = 64
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

MAX_INTEGER_DIGITS = 4000
"""Longer integer literals are read as floats: `int` refuses more than 4,300 digits, and would take
quadratic time on them without that limit."""

MAX_LABEL_BYTES = 1024
"""Longest label value taken from upstream, in UTF-8 bytes; a longer one is cut and ends with CUT_MARKER."""
CUT_MARKER = "…[cut]"

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A string, a bracket or a comma: enough to find where a value that failed to decode ends.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


class InvalidJSON(ValueError):
    """A document that is not the JSON expected; the message says what is wrong, never what it holds."""


class Undecodable:
    """Stands in for one item of a listing that could not be decoded; the rest of the listing still can."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"Undecodable({self.reason!r})"


def _integer(digits: str) -> int | float:
    return int(digits) if len(digits) <= MAX_INTEGER_DIGITS else float(digits)


DECODER = json.JSONDecoder(parse_int=_integer)
"""The tolerant decoder itself (long integers read as floats); `raw_decode` raises `RecursionError` on deep
nesting, which callers turn into a decode error."""


def _text(body: bytes | str) -> str:
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    return text[1:] if text.startswith("\ufeff") else text


def _skip(text: str, index: int) -> int:
    found = _WHITESPACE.match(text, index)
    return found.end() if found else index


def _value(text: str, index: int) -> tuple[Any, int]:
    """One JSON value at `index`, and where it ends."""
    try:
        return DECODER.raw_decode(text, index)
    except RecursionError:
        raise InvalidJSON("body is nested too deeply") from None
    except ValueError:
        raise InvalidJSON("body is not valid JSON") from None


def loads(body: bytes | str) -> Any:
    """A whole JSON document (see the module's description for what is tolerated); raises `InvalidJSON`."""
    text = _text(body)
    value, end = _value(text, _skip(text, 0))
    if _skip(text, end) != len(text):
        raise InvalidJSON("body is not valid JSON")
    return value


def listing(body: bytes | str, key: str) -> Listing:
    """A JSON object whose `key` member is a list, read up to that list; the list's items are decoded one at
    a time as the result is iterated. Raises `InvalidJSON` when the body is not an object or has no such
    list before its end."""
    text = _text(body)
    start, fields = listing_start(text, key)
    return Listing(text, start, fields)


def listing_start(text: str, key: str) -> tuple[int, dict[str, Any]]:
    """Where the items of an object's `key` list begin (just after its `[`), and the members before it.
    Raises `InvalidJSON` when the text is not an object or has no such list (or not yet: a text cut short
    fails the same way)."""
    fields: dict[str, Any] = {}
    index = _skip(text, 0)
    if not text.startswith("{", index):
        raise InvalidJSON("body is not a JSON object")
    index = _skip(text, index + 1)
    if text.startswith("}", index):
        raise InvalidJSON(f"body has no `{key}` list")
    while True:
        name, index = _member_name(text, index)
        if name == key and text.startswith("[", index):
            return index + 1, fields
        fields[name], index = _value(text, index)
        index = _skip(text, index)
        if text.startswith(",", index):
            index = _skip(text, index + 1)
        elif text.startswith("}", index):
            raise InvalidJSON(f"body has no `{key}` list")
        else:
            raise InvalidJSON("body is not valid JSON")


def listing_end(text: str, index: int, fields: dict[str, Any]) -> None:
    """Check the text after a listing's list (from just after its `]`) closes the object and ends there;
    members found after the list go into `fields`. Raises `InvalidJSON` otherwise."""
    index = _skip(text, index)
    while text.startswith(",", index):
        name, index = _member_name(text, _skip(text, index + 1))
        fields[name], index = _value(text, index)
        index = _skip(text, index)
    if not text.startswith("}", index) or _skip(text, index + 1) != len(text):
        raise InvalidJSON("body is not valid JSON")


def _member_name(text: str, index: int) -> tuple[str, int]:
    """An object member's name and the index of its value."""
    if not text.startswith('"', index):
        raise InvalidJSON("body is not valid JSON")
    name, index = _value(text, index)
    index = _skip(text, index)
    if not text.startswith(":", index):
        raise InvalidJSON("body is not valid JSON")
    return name, _skip(text, index + 1)


class Recogniser(Protocol):
    """Knows items by their text: `recognise` gives what stands for the item at `index` of `text`, and
    where it ends, when it knows that item's text; `fresh` wraps an item decoded from `text`."""

    def recognise(self, text: str, index: int) -> tuple[Any, int] | None: ...

    def fresh(self, raw: Any, text: str) -> Any: ...


class Listing:
    """A listing's items, decoded one at a time when iterated (each raw item can be turned into its compact
    model object and dropped before the next one is built), and the object's other members in `fields`
    (those after the list only once the iteration is done). Iterate once; the text is released at the end.
    A broken structure between items raises `InvalidJSON` during the iteration."""

    def __init__(self, text: str, start: int, fields: dict[str, Any]) -> None:
        self._text = text
        self._start = start
        self.fields = fields
        self.recogniser: Recogniser | None = None
        """When set before iterating: items it recognises are not decoded, the others come wrapped."""

    def __iter__(self) -> Iterator[Any]:
        text, index = self._text, _skip(self._text, self._start)
        if text.startswith("]", index):
            index += 1
        else:
            recogniser = self.recogniser
            while True:
                found = recogniser.recognise(text, index) if recogniser is not None else None
                if found is not None:
                    item, index = found
                else:
                    start = index
                    item, index = item_at(text, index)
                    if recogniser is not None and not isinstance(item, Undecodable):
                        item = recogniser.fresh(item, text[start:index])
                yield item
                del item  # not kept alive while the consumer decodes the next one
                index = _skip(text, index)
                if text.startswith(",", index):
                    index = _skip(text, index + 1)
                elif text.startswith("]", index):
                    index += 1
                    break
                else:
                    raise InvalidJSON("body is not valid JSON")
        listing_end(text, index, self.fields)
        self._text = ""


def item_at(text: str, index: int) -> tuple[Any, int]:
    """One item of a list and where it ends; `Undecodable` (skipped over) when it cannot be decoded."""
    try:
        return DECODER.raw_decode(text, index)
    except RecursionError:
        reason = "nested too deeply"
    except ValueError:
        reason = "not valid JSON"
    return Undecodable(reason), _end_of_value(text, index)


def _end_of_value(text: str, index: int) -> int:
    """Where a value that could not be decoded ends: at the comma or bracket that closes it. Iterative, so a
    value nested a million deep costs time in proportion to its size and no stack."""
    depth = 0
    for token in _TOKEN.finditer(text, index):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            if depth == 0:
                return token.start()
            depth -= 1
            if depth == 0:
                return token.end()
        elif mark == "," and depth == 0:
            return token.start()
    raise InvalidJSON("body is not valid JSON")


def as_number(value: Any) -> float | None:
    """A finite number from an int, a float or a decimal string (protobuf-style JSON writes int64 as a
    string: integers are read exactly, above 2^53 as the nearest float); never a bool; None otherwise."""
    kind = type(value)  # exact types: JSON gives int or float, and bool must not pass as a number
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        return _number_text(value)
    if kind is not int:
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _number_text(text: str) -> float | None:
    if not text or len(text) > MAX_NUMBER_TEXT:
        return None
    try:
        if _INTEGER_TEXT.fullmatch(text):
            return float(int(text))
        if _DECIMAL_TEXT.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    except (ValueError, OverflowError):
        return None
    return None


def as_count(value: Any) -> tuple[float | None, bool]:
    """A count, byte figure or rate, which cannot be negative: (the number or None, whether a number was
    there but negative and so dropped)."""
    number = as_number(value)
    if number is not None and number < 0:
        return None, True
    return number, False


def as_text(value: Any) -> str | None:
    """A string as it is; None for anything else."""
    return value if isinstance(value, str) else None


def as_timestamp(value: Any) -> float | None:
    """Unix seconds from an RFC 3339 string (`2025-10-24T16:23:29.612Z`); None when absent, malformed or
    before 2000 (a zero time)."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    seconds = _timestamps.get(value, _UNSEEN)
    if seconds is _UNSEEN:
        if len(_timestamps) >= TIMESTAMPS_KEPT:
            _timestamps.clear()
        seconds = _timestamps[value] = _parse_timestamp(value)
    return seconds


TIMESTAMPS_KEPT = 4096
"""Timestamps remembered once parsed: an environment's blocks and agent mostly share a few, so a listing
parses each once."""
_UNSEEN = -1.0  # never a result: those are None or after EARLIEST_TIMESTAMP
_timestamps: dict[str, float | None] = {}


def _parse_timestamp(value: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    seconds = parsed.timestamp()
    return seconds if seconds >= EARLIEST_TIMESTAMP else None


def as_label(value: Any, field: str, cuts: list[str] | None = None) -> str | None:
    """A string fit to be a label value, None for anything else: a lone surrogate (a JSON `\\ud800` escape,
    which UTF-8 cannot encode) becomes U+FFFD, and a value over MAX_LABEL_BYTES is cut, ending with
    CUT_MARKER. `field` is appended to `cuts` when the value had to be changed."""
    if not isinstance(value, str):
        return None
    text: str = value
    if text.isascii() and len(text) <= MAX_LABEL_BYTES:
        return text
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    if len(text) > MAX_LABEL_BYTES // 4 and len(encoded := text.encode()) > MAX_LABEL_BYTES:
        room = MAX_LABEL_BYTES - len(CUT_MARKER.encode())
        text = encoded[:room].decode("utf-8", "ignore") + CUT_MARKER
    if text != value and cuts is not None:
        cuts.append(field)
    return text


def as_mapping(value: Any) -> dict[str, Any]:
    """A JSON object as a dict; an empty dict for anything else."""
    return value if isinstance(value, dict) else {}
