"""The simulator's web app and lifecycle: Lenses HQ and Confluent Flink on one port, the fault middleware,
the `/_admin/` endpoint for tests in other processes, and the background churn and update generators."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import signal
import sys
import uuid
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from exporter.simulator import confluent, lenses
from exporter.simulator.confluent import ConfluentApi, listing_page, rate_limit_headers
from exporter.simulator.faults import Faults, ScriptedResponse, drift
from exporter.simulator.lenses import LensesApi
from exporter.simulator.options import SimulatorOptions
from exporter.simulator.sse import Hub
from exporter.simulator.world import UnknownObject, World, encode

__all__ = ["RequestRecord", "Simulator", "SimulatorOptions", "serve_forever"]

SHUTDOWN_TIMEOUT = 0.5
LISTING = re.compile(r"/sql/v1/organizations/[^/]+/environments/[^/]+/agents")
NOT_JSON = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
# World methods `/_admin/world` may call.
WORLD_ACTIONS = frozenset(
    (
        *("create_environment", "update_environment", "set_tier", "set_metrics", "disconnect_agent"),
        *("connect_agent", "delete_environment", "put_raw_environment", "renew_key", "add_agent"),
        *("set_agent_phase", "delete_agent", "set_agent_count", "put_raw_agent", "tick", "drift"),
    )
)


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered (tests read these to see what a client sent)."""

    api: str
    method: str
    path: str
    query: str
    host: str
    authorization: bool
    status: int


def api_of(path: str) -> tuple[str | None, str]:
    """Which API a path belongs to, and the path as scripts match it (Lenses without `/api`)."""
    if path.startswith("/api/v1/") or path == "/api/v1":
        return "lenses", path[4:]
    if path.startswith("/v1/"):
        return "lenses", path
    if path.startswith("/sql/"):
        return "confluent", path
    return None, path


class Simulator:
    """Lenses HQ and Confluent Flink on one loopback port; an async context manager.

    `url` is `http://host:port` (the Lenses base URL is `url + "/api"`, also served at `url`); `world` and
    `faults` are meant to be changed directly by tests."""

    def __init__(self, options: SimulatorOptions, host: str = "127.0.0.1", port: int = 0) -> None:
        self.options = options
        self.host = host
        self.port = port
        self.url = ""
        self.world = World(options)
        self.faults = Faults.from_options(options)
        self.hub = Hub(self.faults, options.keepalive_interval, options.sse_retry_ms)
        self.faults.sse_sender = self.hub.send_raw
        self.updates_per_second = options.updates_per_second
        self.update_kind = "every"  # generated updates drift every figure, or change "one" figure each
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)
        self.lenses = LensesApi(self.world, self.faults, self.hub)
        self.confluent = ConfluentApi(self.world, self.faults, options)
        self._rng = random.Random(f"updates-{options.seed}")
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.world.subscribe(self._publish)
        self.app = self._make_app()

    # ----- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the port and start the background generators."""
        # Handler cancellation ends a stream's handler as soon as its client goes away.
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = addresses[0][1]
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}"
        self.world.base_url = self.url
        self._tasks.append(asyncio.create_task(self._generate_updates()))
        if self.options.churn:
            self._tasks.append(asyncio.create_task(self._churn()))

    async def stop(self) -> None:
        """End open streams and background tasks, and close the port."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set_lenses_token(self, token: str) -> None:
        """Rotate the bearer token Lenses HQ accepts (the old one stops working at once)."""
        self.faults.lenses_token = token

    @property
    def lenses_url(self) -> str:
        """The Lenses HQ base URL, as deployments serve it."""
        return self.url + "/api"

    # ----- background -------------------------------------------------------------------------------

    async def _churn(self) -> None:
        while True:
            await asyncio.sleep(self.options.churn_interval)
            self.world.tick()

    async def _generate_updates(self) -> None:
        """`updates_per_second` (plus the flood fault) environment updates on random environments."""
        loop = asyncio.get_running_loop()
        credit = 0.0
        last = loop.time()
        while True:
            rate = self.updates_per_second + self.faults.sse_flood_per_second
            await asyncio.sleep(0.02 if rate > 0 else 0.1)
            now = loop.time()
            credit = credit + (now - last) * rate if rate > 0 else 0.0
            last = now
            wanted = int(credit)
            credit -= wanted
            done = 0
            for name in self.world.random_names(self._rng, wanted * 3):
                if done >= wanted:
                    break
                change = self.world.nudge if self.update_kind == "one" else self.world.drift
                done += change(name, self._rng)

    def _publish(self, event: str, name: str, encoded: bytes | None) -> None:
        """World change → SSE event (drifted or malformed when those faults are on)."""
        if not self.hub.subscribers:
            self.hub.published += 1
            return
        faults = self.faults
        data = encode({"name": name}) if encoded is None else encoded
        if encoded is not None and faults.schema_drift:
            data = encode(drift(json.loads(encoded), faults.rng))
        if faults.applies_to("lenses") and faults.roll(faults.malformed_rate):
            data = data[: len(data) // 2]
        self.hub.publish(event, data)

    # ----- the app ----------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024 * 1024)
        app.add_routes(self.lenses.routes())
        app.add_routes(self.confluent.routes())
        app.add_routes(self._admin_routes())

        async def close_streams(_: web.Application) -> None:
            self.hub.close()

        app.on_shutdown.append(close_streams)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request_id = uuid.uuid4().hex
        request[lenses.REQUEST_ID] = request_id
        api, path = api_of(request.path)
        if api is None:
            response: web.StreamResponse = await handler(request)
            return response
        status = 500
        try:
            response = await self._answer(request, handler, api, path)
            status = response.status
            if not response.prepared:  # a scripted response may bring its own (an empty one: none)
                if response.headers.get("X-Request-Id") == "":
                    del response.headers["X-Request-Id"]
                else:
                    response.headers.setdefault("X-Request-Id", request_id)
            return response
        except web.HTTPException as exception:
            status = exception.status
            if status < 400:
                exception.headers["X-Request-Id"] = request_id
                raise
            # Unknown routes and methods answer in the API's own error format too.
            response = self._error(request, api, status)
            response.headers["X-Request-Id"] = request_id
            return response
        finally:
            self.requests.append(
                RequestRecord(
                    api=api,
                    method=request.method,
                    path=request.path,
                    query=request.query_string,
                    host=request.host,
                    authorization="Authorization" in request.headers,
                    status=status,
                )
            )

    async def _answer(self, request: web.Request, handler: Any, api: str, path: str) -> web.StreamResponse:
        faults = self.faults
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        page: int | None = None
        if request.method == "GET":
            if api == "lenses" and path == "/v1/environments":
                page = 1
            elif api == "confluent" and LISTING.fullmatch(path):
                page = listing_page(request)
        scripted = faults.take_script(api, request.method, path, page)
        if scripted is not None:
            return self._scripted(request, api, scripted)
        if faults.applies_to(api):
            if faults.roll(faults.error_rate):
                return self._error(request, api, faults.rng.choice((500, 503)))
            if faults.roll(faults.rate_limited_rate):
                headers = (
                    rate_limit_headers(faults.rate_limit_capacity, 1) if faults.rate_limited_headers else {}
                )
                if api == "confluent":
                    return web.Response(status=429, headers=headers)
                return lenses.error(request, 429, headers=headers)
        response: web.StreamResponse = await handler(request)
        if (
            isinstance(response, web.Response)
            and response.status == 200
            and response.content_type == "application/json"
            and isinstance(response.body, bytes)
        ):
            fault = faults.body_fault_for(api)
            if fault is not None:
                return self._broken(response, fault)
        return response

    @staticmethod
    def _error(
        request: web.Request, api: str, status: int, headers: dict[str, str] | None = None
    ) -> web.Response:
        if api == "confluent":
            if status == 429:
                return web.Response(status=429, headers=headers)
            title = lenses.ERROR_TITLES.get(status, "Error")
            return confluent.failure(
                request,
                status,
                title,
                code=title.lower().replace(" ", "_"),
                detail=f"The simulator answered {status} on purpose",
                headers=headers,
            )
        return lenses.error(request, status, headers=headers)

    def _scripted(self, request: web.Request, api: str, scripted: ScriptedResponse) -> web.Response:
        body = scripted.body
        if body is None:
            if scripted.status >= 400:
                response = self._error(request, api, scripted.status, dict(scripted.headers))
            else:
                response = web.Response(status=scripted.status, headers=scripted.headers)
            if scripted.content_type:
                response.content_type = scripted.content_type
            return response
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else encode(body)
        return web.Response(
            status=scripted.status,
            body=raw,
            headers=scripted.headers,
            content_type=scripted.content_type or "application/json",
        )

    @staticmethod
    def _broken(response: web.Response, fault: str) -> web.Response:
        body = response.body if isinstance(response.body, bytes) else b""
        if fault == "truncated":
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        if fault == "not_json":
            return web.Response(status=200, body=NOT_JSON, content_type="application/json")
        return web.Response(status=200, body=NOT_JSON, content_type="text/html")

    # ----- admin ------------------------------------------------------------------------------------

    def _admin_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_admin/state", self._admin_state),
            web.get("/_admin/faults", self._admin_faults),
            web.post("/_admin/faults", self._admin_set_faults),
            web.post("/_admin/faults/clear", self._admin_clear),
            web.post("/_admin/faults/scripts", self._admin_script),
            web.post("/_admin/sse/inject", self._admin_inject),
            web.post("/_admin/sse/oversize", self._admin_oversize),
            web.post("/_admin/sse/cut", self._admin_cut),
            web.post("/_admin/lenses-token", self._admin_token),
            web.post("/_admin/world", self._admin_world),
        ]

    async def _admin_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise _bad_request("body is not JSON") from None
        if not isinstance(body, dict):
            raise _bad_request("body must be a JSON object")
        return body

    async def _admin_state(self, request: web.Request) -> web.Response:
        """Counts and ids a test in another process needs."""
        return web.json_response(
            {
                "url": self.url,
                "organization_id": self.world.organization_id,
                "confluent_environment_ids": self.world.confluent_environment_ids,
                "kafka_cluster_ids": self.world.kafka_cluster_ids,
                "environments": len(self.world.environments),
                "agents": self.world.agent_count(),
                "sse_subscribers": len(self.hub.subscribers),
                "sse_connections": self.hub.connections,
                "sse_last_id": self.hub.last_id,
                "events_published": self.hub.published,
                "requests": len(self.requests),
                "updates_per_second": self.updates_per_second,
                "update_kind": self.update_kind,
            }
        )

    async def _admin_faults(self, request: web.Request) -> web.Response:
        """The fault switches and scripts."""
        return web.json_response(self.faults.snapshot())

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        """Set switches: `{"error_rate": 0.5, "sse_stall": true, ...}`; `updates_per_second` and
        `update_kind` (`every` figure drifts, or `one` figure changes) of the generated updates too."""
        body = await self._admin_body(request)
        rate = body.pop("updates_per_second", None)
        kind = body.pop("update_kind", None)
        if kind is not None and kind not in ("every", "one"):
            raise _bad_request("update_kind must be 'every' or 'one'")
        try:
            self.faults.set(**body)
        except ValueError as problem:
            raise _bad_request(str(problem)) from None
        if isinstance(rate, int | float):
            self.updates_per_second = float(rate)
        if kind is not None:
            self.update_kind = kind
        return web.json_response(self.faults.snapshot())

    async def _admin_clear(self, request: web.Request) -> web.Response:
        """Every fault off."""
        self.faults.clear()
        return web.json_response(self.faults.snapshot())

    async def _admin_script(self, request: web.Request) -> web.Response:
        """Add a scripted response: the fields of `ScriptedResponse`."""
        body = await self._admin_body(request)
        try:
            self.faults.script(**body)
        except TypeError as problem:
            raise _bad_request(str(problem)) from None
        return web.json_response(self.faults.snapshot())

    async def _admin_inject(self, request: web.Request) -> web.Response:
        """Raw text to every open stream: `{"raw": "..."}`."""
        raw = (await self._admin_body(request)).get("raw")
        if not isinstance(raw, str):
            raise _bad_request("raw must be a string")
        return web.json_response({"streams": self.faults.sse_inject(raw)})

    async def _admin_oversize(self, request: web.Request) -> web.Response:
        """An oversize event: `{"size": bytes}`."""
        size = (await self._admin_body(request)).get("size")
        if not isinstance(size, int):
            raise _bad_request("size must be an integer")
        return web.json_response({"streams": self.faults.sse_oversize_event(size)})

    async def _admin_cut(self, request: web.Request) -> web.Response:
        """Cut the next event in the middle."""
        self.faults.sse_cut_next_event()
        return web.json_response({"armed": True})

    async def _admin_token(self, request: web.Request) -> web.Response:
        """Rotate the Lenses token: `{"token": "..."}`."""
        token = (await self._admin_body(request)).get("token")
        if not isinstance(token, str) or not token:
            raise _bad_request("token must be a non-empty string")
        self.set_lenses_token(token)
        return web.json_response({"rotated": True})

    async def _admin_world(self, request: web.Request) -> web.Response:
        """Call a world method: `{"action": "disconnect_agent", "args": {"name": "payments-prod-01"}}`."""
        body = await self._admin_body(request)
        action, arguments = body.get("action"), body.get("args") or {}
        if action not in WORLD_ACTIONS or not isinstance(arguments, dict):
            raise _bad_request(f"action must be one of {', '.join(sorted(WORLD_ACTIONS))}; args an object")
        try:
            result = getattr(self.world, action)(**arguments)
        except UnknownObject as missing:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"unknown: {missing}"}), content_type="application/json"
            ) from None
        except (TypeError, ValueError, KeyError) as problem:
            raise _bad_request(str(problem)) from None
        return web.json_response(
            {"result": result if isinstance(result, dict | list | str | int | bool) else None}
        )


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def serve_forever(options: SimulatorOptions, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, after printing the URLs and the settings an exporter needs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Simulator(options, host, port) as simulator:
            world = simulator.world
            print(
                f"Lenses HQ simulator:  {simulator.lenses_url}  ({len(world.environments)} environments)\n"
                f"Confluent simulator:  {simulator.url}  organization {world.organization_id}, "
                f"environments {', '.join(world.confluent_environment_ids)} ({world.agent_count()} agents)\n"
                f"Admin:                {simulator.url}/_admin/state\n"
                f"Try: LENSES_HQ_URL={simulator.lenses_url} CONFLUENT_FLINK_URL={simulator.url} "
                f"CONFLUENT_ORGANIZATION_ID={world.organization_id} "
                f"CONFLUENT_ENVIRONMENT_IDS={','.join(world.confluent_environment_ids)} "
                "(credentials: the --lenses-token, --confluent-api-key and --confluent-api-secret values)",
                file=sys.stdout,
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
