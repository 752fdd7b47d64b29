"""Tolerant readers for the loosely typed JSON values upstreams send."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

EARLIEST_TIMESTAMP = 946684800.0
"""2000-01-01T00:00:00Z: an earlier time (Go's zero time `0001-01-01T00:00:00Z`, the Unix epoch) means
"never", not a moment, and is read as absent."""

MAX_NUMBER_TEXT = 64
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


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
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    seconds = parsed.timestamp()
    return seconds if seconds >= EARLIEST_TIMESTAMP else None


def as_mapping(value: Any) -> dict[str, Any]:
    """A JSON object as a dict; an empty dict for anything else."""
    return value if isinstance(value, dict) else {}
