"""A hostile upstream on loopback for the faults the simulator cannot produce: bodies that trickle a byte a
second, gigabytes behind a megabyte of gzip, connections cut after hundreds of megabytes. One aiohttp server
answers the Lenses listing, the live stream and one Confluent target's agents; each route's behaviour is a
handler the test swaps at will. The exporter watching it runs in the same process."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
from aiohttp import web

from exporter.config import ConfluentSettings, ConfluentTarget, LensesSettings, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.service import Exporter
from tests.faults.rig import State, reduce
from tests.support import free_port, parse_samples

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ORGANIZATION = "7f5c1a2b-0000-4000-8000-000000000001"
ENVIRONMENT = "env-hostile"
AGENTS_PATH = f"/sql/v1/organizations/{ORGANIZATION}/environments/{ENVIRONMENT}/agents"
ENVIRONMENTS = [{"name": f"hostile-{index}", "tier": "development"} for index in range(3)]
AGENTS = [{"name": f"agent-{index}", "spec": {"model": "m"}} for index in range(2)]


def listing_body() -> bytes:
    return json.dumps({"items": ENVIRONMENTS}).encode()


def agents_body() -> bytes:
    return json.dumps({"api_version": "sql/v1", "kind": "AgentList", "metadata": {}, "data": AGENTS}).encode()


async def good_listing(request: web.Request) -> web.StreamResponse:
    return web.Response(body=listing_body(), content_type="application/json")


def listing_of(names: list[str]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"items": [{"name": name} for name in names]})

    return handler


async def good_agents(request: web.Request) -> web.StreamResponse:
    return web.Response(body=agents_body(), content_type="application/json")


async def no_stream(request: web.Request) -> web.StreamResponse:
    return web.Response(status=404)


def trickle(body: bytes, interval: float = 1.0) -> Handler:
    """Headers at once, then the body one byte every `interval` seconds."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        for index in range(len(body)):
            await response.write(body[index : index + 1])
            await asyncio.sleep(interval)
        return response

    return handler


def cut_after(size: int, declared: int) -> Handler:
    """Declares `declared` bytes, sends `size` bytes of a JSON listing's start, then drops the connection."""
    head = b'{"items": [' + b'{"name": "padding-0000000000"},' * (size // 31 + 1)
    body = memoryview(head)[:size]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = declared
        await response.prepare(request)
        step = 1024 * 1024
        for start in range(0, size, step):
            await response.write(body[start : start + step])
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


def gzip_of_blank(size: int, prefix: bytes = b"") -> bytes:
    """`prefix` then `size` bytes of newlines, gzip-compressed (a gigabyte fits in about a megabyte)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\n" * (1024 * 1024)
    parts = [compressor.compress(prefix)]
    for _ in range(size // len(block)):
        parts.append(compressor.compress(block))
    parts.append(compressor.flush())
    return b"".join(parts)


def gzipped(body: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type, "Content-Encoding": "gzip"})
        await response.prepare(request)
        step = 64 * 1024
        for start in range(0, len(body), step):
            await response.write(body[start : start + step])
        await response.write_eof()
        return response

    return handler


def rate_limited(seconds: int) -> Handler:
    """429 with `Retry-After: seconds` (the exporter caps what it waits at 300 s)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": str(seconds)})

    return handler


async def stream_closing_after_one_event(request: web.Request) -> web.StreamResponse:
    """A live stream asking for reconnects after 1 ms (`retry: 1`) that closes cleanly after one event."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b'retry: 1\n\nevent: environment_deleted\ndata: {"name": "gone"}\n\n')
    await response.write_eof()
    return response


def redirect_to(base: str) -> Handler:
    """A 307 to the same path and query under `base` (another port of this host, say)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": base + request.rel_url.path_qs})

    return handler


class Hostile:
    """The server; `lenses`, `stream` and `agents` are the current handlers of the three routes."""

    def __init__(self) -> None:
        self.lenses: Handler = good_listing
        self.stream: Handler = no_stream
        self.agents: Handler = good_agents
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: dict[str, int] = {"lenses": 0, "stream": 0, "agents": 0}
        self.paths: list[str] = []  # every request's path as sent, in order
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.paths.append(request.raw_path)
            return await handler(request)

        async def anything_else(request: web.Request) -> web.StreamResponse:
            return web.json_response({"items": []})  # Kafka connections, or wherever a path leads

        app = web.Application(middlewares=[record])

        def route(name: str) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                self.requests[name] += 1
                current: Handler = getattr(self, name)
                return await current(request)

            return handler

        app.router.add_get("/api/v1/environments", route("lenses"))
        app.router.add_get("/api/v1/environments/live/sse", route("stream"))
        app.router.add_get(AGENTS_PATH, route("agents"))
        app.router.add_get("/{tail:.*}", anything_else)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.2, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Watched:
    """The exporter watching the hostile upstream, and a client to read it."""

    def __init__(self, exporter: Exporter, http: httpx.AsyncClient, hostile: Hostile) -> None:
        self.exporter = exporter
        self.http = http
        self.hostile = hostile
        self.url = f"http://127.0.0.1:{exporter.port}"

    async def state(self) -> State:
        response = await self.http.get(self.url + "/metrics")
        response.raise_for_status()
        return reduce(parse_samples(response.text))


@asynccontextmanager
async def watched(
    *, lenses: dict[str, Any] | None = None, confluent: dict[str, Any] | None = None
) -> AsyncIterator[Watched]:
    """A hostile upstream and an exporter with both sources on it, polling every second, `timeout` 1 s and
    `request_deadline` 3 s unless overridden; the stream is off unless the test serves one."""
    hostile = Hostile()
    await hostile.start()
    lenses_settings = replace(
        LensesSettings(
            name="hq",
            url=hostile.url + "/api",
            token=Secret("hostile-token-3a9f"),
            poll_interval=1.0,
            timeout=1.0,
            request_deadline=3.0,
            sse=False,
            sse_idle_timeout=2.0,
            sse_unavailable_probe_interval=1.0,
        ),
        **(lenses or {}),
    )
    target = replace(
        ConfluentTarget(
            name="flink",
            url=hostile.url,
            organization_id=ORGANIZATION,
            environment_id=ENVIRONMENT,
            token=Secret("hostile-confluent-token-81c2"),
            poll_interval=1.0,
            timeout=1.0,
            request_deadline=3.0,
        ),
        **(confluent or {}),
    )
    settings = Settings(
        web=WebSettings(listen_address="127.0.0.1:0"),
        lenses=lenses_settings,
        confluent=ConfluentSettings(targets=(target,)),
    )
    exporter = Exporter(settings)
    for source in exporter.sources:
        if hasattr(source, "start_step"):
            source.start_step = 0.0
    try:
        await exporter.start()
        async with httpx.AsyncClient(timeout=10) as http:
            yield Watched(exporter, http, hostile)
    finally:
        await exporter.stop()
        await hostile.stop()
