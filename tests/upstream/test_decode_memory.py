"""Decoding a listing builds no more than a small multiple of its body: a listing of a million `{}` (the
smallest JSON object, a 64-byte dict each once parsed) costs what its text costs, for both sources."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from aiohttp import web

from exporter.config import ConfluentTarget, LensesSettings
from exporter.config.secrets import Secret
from exporter.confluent.client import ConfluentClient
from exporter.confluent.model import InvalidAgent, decode_agent
from exporter.lenses.client import LensesClient
from exporter.lenses.model import InvalidEnvironment, decode_environment
from exporter.telemetry import Telemetry

ITEMS = 1_000_000
BOUND = 8
"""Peak traced memory while listing and decoding, as a multiple of the body."""


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, int]]:
    """Serves the same body of a million empty objects as a Lenses and a Confluent listing."""
    empty = b",".join([b"{}"] * ITEMS)
    lenses = b'{"items":[' + empty + b"]}"
    confluent = b'{"data":[' + empty + b'],"metadata":{}}'

    async def environments(request: web.Request) -> web.Response:
        return web.Response(body=lenses, content_type="application/json")

    async def agents(request: web.Request) -> web.Response:
        return web.Response(body=confluent, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/environments", environments)
    app.router.add_get("/sql/v1/organizations/{organization}/environments/{environment}/agents", agents)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", len(lenses)
    finally:
        await runner.cleanup()


async def peak(work: Callable[[], Coroutine[Any, Any, int]]) -> tuple[int, int]:
    """(traced peak in bytes, what `work` returned)."""
    tracemalloc.start()
    try:
        result = await work()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


async def test_a_lenses_listing_of_empty_objects_costs_a_small_multiple_of_its_body(
    upstream: tuple[str, int],
) -> None:
    url, size = upstream
    client = LensesClient(LensesSettings(name="hq", url=url + "/api", token=Secret("t0ken-x")), Telemetry())

    async def list_and_decode() -> int:
        items, _ = await client.list_environments()
        invalid = 0
        for raw in items:
            try:
                decode_environment(raw)
            except InvalidEnvironment:
                invalid += 1
        return invalid

    try:
        used, invalid = await peak(list_and_decode)
    finally:
        await client.aclose()
    assert invalid == ITEMS
    assert used < BOUND * size, f"{used / size:.1f} times the body"


async def test_a_confluent_page_of_empty_objects_costs_a_small_multiple_of_its_body(
    upstream: tuple[str, int],
) -> None:
    url, size = upstream
    target = ConfluentTarget(
        name="flink", url=url, organization_id="o", environment_id="e", token=Secret("t0ken-x")
    )
    client = ConfluentClient(target, Telemetry())

    async def list_and_decode() -> int:
        listing = await client.list_agents()
        invalid = 0
        for raw in listing.items:
            try:
                decode_agent(raw)
            except InvalidAgent:
                invalid += 1
        return invalid

    try:
        used, invalid = await peak(list_and_decode)
    finally:
        await client.aclose()
    assert invalid == ITEMS
    assert used < BOUND * size, f"{used / size:.1f} times the body"
