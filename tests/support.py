"""Shared helpers for the test suite: binaries, polling until a deadline, reading /metrics."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    """The binary's path; skips the test when it is missing, and fails it under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: prometheus / prometheus-alertmanager)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation timeout
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll `probe` until it returns a truthy value or the deadline passes (then fail with `what`)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or probe}: last value {last!r}")


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    """Samples with this name whose labels include the given ones."""
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


async def scrape(client: httpx.AsyncClient, url: str) -> list[Sample]:
    """GET a /metrics URL and parse it."""
    response = await client.get(url)
    response.raise_for_status()
    return parse_samples(response.text)


def promtool_check_metrics(text: str) -> str:
    """Run `promtool check metrics` on an exposition; returns its findings ('' when clean)."""
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    findings = (result.stdout + result.stderr).decode().strip()
    if result.returncode not in (0, 3):
        pytest.fail(f"promtool failed ({result.returncode}): {findings}")
    return findings if result.returncode == 3 or findings else ""


class LandingPage(HTMLParser):
    """The landing page parsed: its table rows as lists of cell texts, its links, every tag and attribute
    name seen."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.attributes: list[str] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += [name for name, _ in attrs]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links += [value or "" for name, value in attrs if name == "href"]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def targets(self) -> list[dict[str, str]]:
        """Every target's row, by column heading."""
        heading = self.rows[0]
        return [dict(zip(heading, row, strict=True)) for row in self.rows[1:] if len(row) == len(heading)]

    def row(self, target: str) -> dict[str, str]:
        """The row of one target, by column heading."""
        [found] = [row for row in self.targets() if row["target"] == target]
        return found
