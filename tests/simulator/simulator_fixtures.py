"""Helpers for the simulator's own tests: a running simulator, credentials, reading the live stream, and
comparing payload shapes (key sets and nesting) with the reference examples."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from exporter.simulator.server import Simulator, SimulatorOptions

LENSES_TOKEN = "hq-token"
API_KEY = "key"
API_SECRET = "secret"
OAUTH_TOKEN = "oauth-token"
LENSES_AUTH = {"Authorization": f"Bearer {LENSES_TOKEN}"}
CONFLUENT_AUTH = httpx.BasicAuth(API_KEY, API_SECRET)
STREAM_PATH = "/v1/environments/live/sse"
LINE_END = re.compile(r"[\r\n]")


def options(**overrides: Any) -> SimulatorOptions:
    """Small, quiet options with the test credentials."""
    settings: dict[str, Any] = {
        "environments": 6,
        "agents": 12,
        "seed": 7,
        "lenses_token": LENSES_TOKEN,
        "confluent_api_key": API_KEY,
        "confluent_api_secret": API_SECRET,
        "confluent_token": OAUTH_TOKEN,
        "churn": False,
    }
    settings.update(overrides)
    return SimulatorOptions(**settings)


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    """A simulator on loopback and an httpx client pointed at it."""
    async with (
        Simulator(options(**overrides)) as simulator,
        httpx.AsyncClient(base_url=simulator.url, timeout=httpx.Timeout(5.0)) as client,
    ):
        yield simulator, client


def listing_path(simulator: Simulator, environment_id: str | None = None) -> str:
    """The Confluent agents listing of an environment (the first one by default)."""
    environment = environment_id or simulator.world.confluent_environment_ids[0]
    return f"/sql/v1/organizations/{simulator.world.organization_id}/environments/{environment}/agents"


def database_path(simulator: Simulator, environment_id: str, cluster: str) -> str:
    """The per-Kafka-cluster agents path."""
    organization = simulator.world.organization_id
    return f"/sql/v1/organizations/{organization}/environments/{environment_id}/databases/{cluster}/agents"


async def list_all_agents(
    client: httpx.AsyncClient, path: str, page_size: int | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow `metadata.next` to the end: every agent, and every page's metadata."""
    agents: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    url: str | None = path + (f"?page_size={page_size}" if page_size else "")
    while url:
        response = await client.get(url, auth=CONFLUENT_AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        agents += body["data"]
        pages.append(body["metadata"])
        url = body["metadata"].get("next") or None
        assert len(pages) < 1000
    return agents, pages


@dataclass
class StreamEvent:
    """One event of the live stream, parsed the way the SSE specification says."""

    event: str
    data: str
    id: str | None
    retry: int | None = None


@dataclass
class StreamReader:
    """Reads raw bytes of an open stream and parses them into events and comments."""

    response: httpx.Response
    raw: bytearray = field(default_factory=bytearray)
    _chunks: AsyncIterator[bytes] | None = None
    _buffer: str = ""
    _fields: dict[str, list[str]] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    async def next_event(self, within: float = 5.0) -> StreamEvent:
        """The next complete event (comments are collected on the side)."""
        async with asyncio.timeout(within):
            while True:
                event = self._parse()
                if event is not None:
                    return event
                if self._chunks is None:
                    self._chunks = self.response.aiter_bytes()
                chunk = await anext(self._chunks)
                self.raw += chunk
                self._buffer += chunk.decode("utf-8", errors="replace")

    async def next_comment(self, within: float = 5.0) -> str:
        """Read until a comment line arrives."""
        seen = len(self.comments)
        async with asyncio.timeout(within):
            while len(self.comments) == seen:
                if self._chunks is None:
                    self._chunks = self.response.aiter_bytes()
                chunk = await anext(self._chunks)
                self.raw += chunk
                self._buffer += chunk.decode("utf-8", errors="replace")
                assert self._parse() is None, "an event arrived before the comment"
        return self.comments[-1]

    def _parse(self) -> StreamEvent | None:
        while True:
            found = LINE_END.search(self._buffer)
            if found is None:
                return None
            index, character = found.start(), found.group()
            line = self._buffer[:index]
            if character == "\r" and index + 1 >= len(self._buffer):
                return None  # a lone \r at the end may still be followed by \n
            skip = 2 if self._buffer[index : index + 2] == "\r\n" else 1
            self._buffer = self._buffer[index + skip :]
            if line == "":
                if "data" in self._fields or "event" in self._fields:
                    event = StreamEvent(
                        event=self._fields.get("event", ["message"])[-1],
                        data="\n".join(self._fields.get("data", [])),
                        id=self._fields.get("id", [None])[-1],  # type: ignore[list-item]
                        retry=next(
                            (int(v) for v in reversed(self._fields.get("retry", [])) if v.isdigit()), None
                        ),
                    )
                    self._fields = {}
                    return event
                self._fields = {}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            self._fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None, prefix: str = "/api"
) -> AsyncIterator[StreamReader]:
    """An open live stream."""
    async with client.stream(
        "GET", prefix + STREAM_PATH, headers={**LENSES_AUTH, **(headers or {})}
    ) as response:
        assert response.status_code == 200
        yield StreamReader(response)


def shape(value: Any) -> Any:
    """A payload's structure: objects become {key: shape}, lists the shape of their first item, scalars a
    kind (number, string, boolean, null)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "null"


def shape_differences(
    expected: Any, actual: Any, path: str = "$", allowed_extra: frozenset[str] = frozenset()
) -> list[str]:
    """Where `actual` departs from `expected`: missing or unexpected keys, other nesting, other kinds.
    Keys in `allowed_extra` (by name) may appear in `actual` only; an empty list matches any list."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = [f"{path}.{key}: missing" for key in expected if key not in actual]
        problems += [
            f"{path}.{key}: unexpected" for key in actual if key not in expected and key not in allowed_extra
        ]
        for key in expected:
            if key in actual:
                problems += shape_differences(expected[key], actual[key], f"{path}.{key}", allowed_extra)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        if expected and actual:
            return shape_differences(expected[0], actual[0], f"{path}[0]", allowed_extra)
        return []
    return [] if expected == actual else [f"{path}: expected {expected}, got {actual}"]
