"""HTTP endpoints: /metrics (text, OpenMetrics, gzip), /healthz, /readyz and a landing page."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TypedDict

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import exposition, openmetrics

from exporter.exposition.store import Store
from exporter.health import Health
from exporter.telemetry import Telemetry
from exporter.web import landing as landing_page

WRITE_BATCH_BYTES = 1 << 20
"""Bytes joined per write of a scrape's body; the event loop gets a turn after each."""

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class ServerLimits(TypedDict):
    """Keyword arguments of aiohttp's request handler that bound a client's input."""

    max_line_size: int
    max_field_size: int
    max_headers: int
    keepalive_timeout: float


# Bounds on what a client may send, for aiohttp's protocol handler (`web.AppRunner(app, **SERVER_LIMITS)`):
# a request or header line over 8 KiB or more than 64 headers is refused with 400 before any handler runs
# (request bodies are capped by `client_max_size`), and a connection idle, or still sending its headers,
# after 75 s is closed (aiohttp's default is an hour).
SERVER_LIMITS = ServerLimits(max_line_size=8190, max_field_size=8190, max_headers=64, keepalive_timeout=75.0)

STORE_KEY = web.AppKey("store", Store)
TELEMETRY_KEY = web.AppKey("telemetry", Telemetry)
HEALTH_KEY = web.AppKey("health", Health)
TELEMETRY_PATH_KEY = web.AppKey("telemetry_path", str)


def wants_openmetrics(accept: str) -> bool:
    """Whether the scraper asked for OpenMetrics (Prometheus lists it first when it can read it)."""
    return "application/openmetrics-text" in accept


def wants_gzip(accept_encoding: str) -> bool:
    """Whether the scraper accepts gzip (and did not refuse it with q=0)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def own_metrics(telemetry: Telemetry, openmetrics_format: bool) -> bytes:
    """The exporter's own metrics (small; rendered by prometheus_client at every scrape), which close the
    exposition (`# EOF` in OpenMetrics)."""
    if openmetrics_format:
        own: bytes = openmetrics.exposition.generate_latest(telemetry.registry)  # type: ignore[no-untyped-call]
        return own
    return exposition.generate_latest(telemetry.registry)


async def metrics(request: web.Request) -> web.StreamResponse:
    """Serve the exposition from what is stored; never waits on an upstream.

    The body is written in slices of a megabyte joined from the store's texts and segments, so a large
    estate's scrape neither builds one huge temporary copy nor holds the event loop for all of it."""
    app = request.app
    store = app[STORE_KEY]
    openmetrics_format = wants_openmetrics(request.headers.get("Accept", ""))
    suffix = own_metrics(app[TELEMETRY_KEY], openmetrics_format)
    response = web.StreamResponse(
        headers={
            "Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics_format else TEXT_CONTENT_TYPE,
            "Vary": "Accept, Accept-Encoding",
        }
    )
    if wants_gzip(request.headers.get("Accept-Encoding", "")):
        response.headers["Content-Encoding"] = "gzip"
        body = store.gzip_parts(suffix, openmetrics_format)
    else:
        body = store.parts(suffix, openmetrics_format)
    response.content_length = body.length
    with store.serving():
        await response.prepare(request)
        for batch in body.batches(WRITE_BATCH_BYTES):
            await response.write(batch)
            # The socket may take every batch without waiting; a turn of the loop between batches keeps the
            # live stream's updates flowing during a large scrape.
            await asyncio.sleep(0)
        await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 once every target finished its first sync; 503 naming the pending ones before."""
    pending = request.app[HEALTH_KEY].pending()
    if pending:
        return web.json_response({"status": "pending", "pending": pending}, status=503)
    return web.json_response({"status": "ready"})


async def landing(request: web.Request) -> web.Response:
    """The landing page: version, every target with its state, links."""
    app = request.app
    page = landing_page.render(app[HEALTH_KEY], app[TELEMETRY_KEY], app[TELEMETRY_PATH_KEY])
    return web.Response(text=page, content_type="text/html")


def make_app(
    store: Store,
    telemetry: Telemetry,
    health: Health,
    middlewares: Sequence[Middleware] = (),
    response_headers: Mapping[str, str] | None = None,
    *,
    telemetry_path: str = "/metrics",
) -> web.Application:
    """The aiohttp application serving the exporter's endpoints, the metrics at `telemetry_path`."""
    app = web.Application(client_max_size=64 * 1024, middlewares=list(middlewares))
    if response_headers:
        extra = dict(response_headers)

        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(extra)

        app.on_response_prepare.append(add_headers)
    app[STORE_KEY] = store
    app[TELEMETRY_KEY] = telemetry
    app[HEALTH_KEY] = health
    app[TELEMETRY_PATH_KEY] = telemetry_path
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", landing)
    return app
