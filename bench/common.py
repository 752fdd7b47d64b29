"""What the benchmark's processes share: percentiles, /proc readings, the ready line a child prints, and
waiting for SIGTERM."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

LENSES_TOKEN = "bench-hq-token"
CONFLUENT_API_KEY = "bench-key"
CONFLUENT_API_SECRET = "bench-secret"
READY_PREFIX = "BENCH-READY "

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is their maximum); NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Iterable[float]) -> dict[str, float]:
    """p50, p99, max, count and total of durations given in seconds, in milliseconds."""
    values = [value * 1000.0 for value in seconds]
    return {
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) if values else math.nan,
        "count": float(len(values)),
        "total_ms": sum(values),
    }


class Ring:
    """A fixed-size ring of floats, allocated once: recording never grows the process's memory."""

    def __init__(self, size: int) -> None:
        self._values = array("d", bytes(8 * size))
        self._size = size
        self._next = 0
        self.total = 0

    def add(self, value: float) -> None:
        """Record one value (the oldest is overwritten once the ring is full)."""
        self._values[self._next] = value
        self._next = (self._next + 1) % self._size
        self.total += 1

    def clear(self) -> None:
        """Forget every value."""
        self._next = 0
        self.total = 0

    def values(self) -> list[float]:
        """The values held (at most the ring's size, the most recent ones)."""
        if self.total >= self._size:
            return list(self._values)
        return list(self._values[: self._next])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """The process's resident set size."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def announce(**fields: Any) -> None:
    """Tell the parent this child is ready, and what it needs to know (one line on stdout)."""
    sys.stdout.write(READY_PREFIX + json.dumps({"pid": os.getpid(), **fields}) + "\n")
    sys.stdout.flush()


async def until_terminated() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
