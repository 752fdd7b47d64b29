"""Lenses HQ's environments API as the simulator serves it, under both `/api/v1` and `/v1`: environments,
Kafka connections, agent-key renewal, the live stream and the proxy prefix, with Bearer auth and HQ's
error object."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exporter.simulator.faults import Faults, drift
from exporter.simulator.sse import Hub
from exporter.simulator.world import TIERS, UnknownObject, World, encode, valid_environment_name

PREFIXES = ("/api/v1", "/v1")
REQUEST_ID = web.RequestKey("request_id", str)
ERROR_TITLES = {
    400: "Bad request",
    401: "Unauthorised",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}
ERROR_TYPES = {
    400: "validation_error",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "agent_rpc_error",
    503: "internal_server_error",
}


def error_body(
    status: int,
    request_id: str,
    type_: str | None = None,
    title: str | None = None,
    invalid_fields: list[dict[str, str]] | None = None,
    sso_url: str = "",
) -> dict[str, Any]:
    """HQ's error object; every key of the reference example is present."""
    return {
        "type": type_ or ERROR_TYPES.get(status, "internal_server_error"),
        "title": title or ERROR_TITLES.get(status, "Error"),
        "status": status,
        "invalid_fields": invalid_fields or [],
        "sso_url": sso_url,
        "request_id": request_id,
    }


def error(
    request: web.Request,
    status: int,
    type_: str | None = None,
    title: str | None = None,
    invalid_fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An HQ error response for this request."""
    body = error_body(status, request_id_of(request), type_, title, invalid_fields)
    return web.Response(status=status, body=encode(body), content_type="application/json", headers=headers)


def request_id_of(request: web.Request) -> str:
    """The id the simulator gave this request (also sent as X-Request-Id)."""
    value = request.get(REQUEST_ID)
    return value if isinstance(value, str) else ""


def json_response(body: bytes, status: int = 200) -> web.Response:
    """Pre-encoded JSON."""
    return web.Response(status=status, body=body, content_type="application/json")


def invalid(name: str, error_code: str, title: str) -> dict[str, str]:
    """One entry of `invalid_fields`."""
    return {"name": name, "error": error_code, "title": title}


async def read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    """The request's JSON body, or a 400 validation error."""
    try:
        return json.loads(await request.read() or b"null"), None
    except ValueError:
        return None, error(request, 400, "validation_error", "The request body is not valid JSON")


class LensesApi:
    """Handlers of the HQ routes, over a world, the faults and the SSE hub."""

    def __init__(self, world: World, faults: Faults, hub: Hub) -> None:
        self.world = world
        self.faults = faults
        self.hub = hub

    def routes(self) -> list[web.RouteDef]:
        """Every HQ route, under each prefix (the live stream before `{name}` so it wins)."""
        table: list[web.RouteDef] = []
        for prefix in PREFIXES:
            environments = f"{prefix}/environments"
            table += [
                web.get(f"{environments}/live/sse", self.stream),
                web.get(environments, self.list_environments),
                web.post(environments, self.create_environment),
                web.get(f"{environments}/{{name}}", self.get_environment),
                web.patch(f"{environments}/{{name}}", self.patch_environment),
                web.delete(f"{environments}/{{name}}", self.delete_environment),
                web.post(f"{environments}/{{name}}/renew-key", self.renew_key),
                web.get(f"{environments}/{{name}}/kafka-connections", self.list_connections),
                web.get(f"{environments}/{{name}}/kafka-connections/{{connection}}", self.get_connection),
                web.put(f"{environments}/{{name}}/kafka-connections/{{connection}}", self.put_connection),
                web.delete(
                    f"{environments}/{{name}}/kafka-connections/{{connection}}", self.delete_connection
                ),
                web.route("*", f"{environments}/{{name}}/proxy/{{tail:.*}}", self.proxy),
            ]
        return table

    # ----- helpers ----------------------------------------------------------------------------------

    def unauthorised(self, request: web.Request) -> web.Response | None:
        """A 401 unless the request carries the current bearer token."""
        if request.headers.get("Authorization") == f"Bearer {self.faults.lenses_token}":
            return None
        return error(request, 401, "unauthorised", "Invalid or missing bearer token")

    def not_found(self, request: web.Request, what: str) -> web.Response:
        """A 404 naming what is missing."""
        return error(request, 404, "not_found", f"{what} not found")

    def list_bytes(self) -> bytes:
        """The environment list as served now (drifted when that fault is on)."""
        if self.faults.schema_drift:
            items = [
                drift(json.loads(self.world.environment_bytes(n)), self.faults.rng)
                for n in self.world.environments
            ]
            return encode({"items": items})
        return self.world.environment_list_bytes()

    def environment_bytes(self, name: str) -> bytes:
        """One environment as served now."""
        encoded = self.world.environment_bytes(name)
        return encode(drift(json.loads(encoded), self.faults.rng)) if self.faults.schema_drift else encoded

    # ----- environments -----------------------------------------------------------------------------

    async def list_environments(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/environments`: `{"items": [...]}`, not paginated."""
        return self.unauthorised(request) or json_response(self.list_bytes())

    async def get_environment(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/environments/{name}`."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        try:
            return json_response(self.environment_bytes(name))
        except UnknownObject:
            return self.not_found(request, f"environment {name!r}")

    async def create_environment(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/environments`: validates name, tier, display name and metadata."""
        if denied := self.unauthorised(request):
            return denied
        body, failure = await read_json(request)
        if failure:
            return failure
        if not isinstance(body, dict):
            return error(request, 400, "validation_error", "The request body must be a JSON object")
        problems: list[dict[str, str]] = []
        name = body.get("name")
        if name is None:
            problems.append(invalid("name", "required", "name is required"))
        elif not valid_environment_name(name):
            problems.append(
                invalid(
                    "name",
                    "invalid_format",
                    "lowercase alphanumerics or hyphens, no hyphen at either end, at most 63 characters",
                )
            )
        problems += self._field_problems(body, tier_required=False)
        if problems:
            return error(request, 400, "validation_error", "Invalid environment", problems)
        assert isinstance(name, str)
        if name in self.world.environments:
            return error(request, 409, "conflict", f"environment {name!r} already exists")
        created = self.world.create_environment(
            name,
            tier=body.get("tier") or "development",
            display_name=body.get("display_name"),
            metadata=body.get("metadata"),
            connected=False,
        )
        return json_response(encode(created), status=201)

    @staticmethod
    def _field_problems(body: dict[str, Any], tier_required: bool) -> list[dict[str, str]]:
        problems: list[dict[str, str]] = []
        if "tier" in body or tier_required:
            tier = body.get("tier")
            if tier not in TIERS:
                problems.append(invalid("tier", "invalid_value", f"tier must be one of {', '.join(TIERS)}"))
        if "display_name" in body and not isinstance(body["display_name"], str):
            problems.append(invalid("display_name", "invalid_type", "display_name must be a string"))
        metadata = body.get("metadata")
        if "metadata" in body and not (
            isinstance(metadata, dict) and all(isinstance(value, str) for value in metadata.values())
        ):
            problems.append(invalid("metadata", "invalid_type", "metadata must map names to strings"))
        return problems

    async def patch_environment(self, request: web.Request) -> web.StreamResponse:
        """`PATCH /v1/environments/{name}`: tier, display name, metadata."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        if name not in self.world.environments:
            return self.not_found(request, f"environment {name!r}")
        body, failure = await read_json(request)
        if failure:
            return failure
        if not isinstance(body, dict):
            return error(request, 400, "validation_error", "The request body must be a JSON object")
        if problems := self._field_problems(body, tier_required=False):
            return error(request, 400, "validation_error", "Invalid environment", problems)
        changes = {key: body[key] for key in ("tier", "display_name", "metadata") if key in body}
        return json_response(encode(self.world.update_environment(name, **changes)))

    async def delete_environment(self, request: web.Request) -> web.StreamResponse:
        """`DELETE /v1/environments/{name}`: 204."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        try:
            self.world.delete_environment(name)
        except UnknownObject:
            return self.not_found(request, f"environment {name!r}")
        return web.Response(status=204)

    async def renew_key(self, request: web.Request) -> web.StreamResponse:
        """`POST /v1/environments/{name}/renew-key`: the environment with a new `agent_key`."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        try:
            return json_response(encode(self.world.renew_key(name)))
        except UnknownObject:
            return self.not_found(request, f"environment {name!r}")

    # ----- Kafka connections ------------------------------------------------------------------------

    async def list_connections(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/environments/{name}/kafka-connections`."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        try:
            return json_response(encode({"items": self.world.connections(name)}))
        except UnknownObject:
            return self.not_found(request, f"environment {name!r}")

    async def get_connection(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/environments/{name}/kafka-connections/{connection}`."""
        if denied := self.unauthorised(request):
            return denied
        name, connection = request.match_info["name"], request.match_info["connection"]
        try:
            return json_response(encode(self.world.connection(name, connection)))
        except UnknownObject:
            return self.not_found(request, f"Kafka connection {connection!r}")

    async def put_connection(self, request: web.Request) -> web.StreamResponse:
        """`PUT /v1/environments/{name}/kafka-connections/{connection}`: create or replace."""
        if denied := self.unauthorised(request):
            return denied
        name, connection = request.match_info["name"], request.match_info["connection"]
        if name not in self.world.environments:
            return self.not_found(request, f"environment {name!r}")
        body, failure = await read_json(request)
        if failure:
            return failure
        problems: list[dict[str, str]] = []
        if not isinstance(body, dict):
            return error(request, 400, "validation_error", "The request body must be a JSON object")
        addresses = body.get("override_broker_addresses")
        if addresses is not None and not (
            isinstance(addresses, list) and all(isinstance(address, str) for address in addresses)
        ):
            problems.append(
                invalid("override_broker_addresses", "invalid_type", "a list of host:port strings")
            )
        if "auth" in body and not isinstance(body["auth"], dict):
            problems.append(invalid("auth", "invalid_type", "auth must be an object"))
        if problems:
            return error(request, 400, "validation_error", "Invalid Kafka connection", problems)
        return json_response(encode(self.world.put_connection(name, connection, body)))

    async def delete_connection(self, request: web.Request) -> web.StreamResponse:
        """`DELETE /v1/environments/{name}/kafka-connections/{connection}`: 204."""
        if denied := self.unauthorised(request):
            return denied
        name, connection = request.match_info["name"], request.match_info["connection"]
        try:
            self.world.delete_connection(name, connection)
        except UnknownObject:
            return self.not_found(request, f"Kafka connection {connection!r}")
        return web.Response(status=204)

    # ----- live stream and proxy --------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/environments/live/sse`: snapshot, then updates; `Last-Event-ID` gets a fresh snapshot."""
        if denied := self.unauthorised(request):
            return denied
        if not self.faults.sse_enabled:
            return self.not_found(request, "route")
        return await self.hub.serve(request, self.list_bytes, {"X-Request-Id": request_id_of(request)})

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """`/v1/environments/{name}/proxy/...`: 503 `agent_not_connected` without an agent, else an echo."""
        if denied := self.unauthorised(request):
            return denied
        name = request.match_info["name"]
        try:
            connected = self.world.connected(name)
        except UnknownObject:
            return self.not_found(request, f"environment {name!r}")
        if not connected:
            return error(
                request, 503, "agent_not_connected", f"The agent of environment {name!r} is not connected"
            )
        body = {"environment": name, "method": request.method, "path": "/" + request.match_info["tail"]}
        return json_response(encode(body))
