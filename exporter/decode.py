"""Tolerant readers for the loosely typed JSON values upstreams send."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


def as_number(value: Any) -> float | None:
    """A finite number from an int or float (never a bool or string); None otherwise."""
    kind = type(value)  # exact types: JSON gives int or float, and bool must not pass as a number
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is not int:
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def as_text(value: Any) -> str | None:
    """A string as it is; None for anything else."""
    return value if isinstance(value, str) else None


def as_timestamp(value: Any) -> float | None:
    """Unix seconds from an RFC 3339 string (`2025-10-24T16:23:29.612Z`); None when absent or malformed."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def as_mapping(value: Any) -> dict[str, Any]:
    """A JSON object as a dict; an empty dict for anything else."""
    return value if isinstance(value, dict) else {}
