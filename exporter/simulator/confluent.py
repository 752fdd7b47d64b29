"""Confluent Cloud's Flink SQL agents API as the simulator serves it: the paged listing per environment and
the per-database get/create/update/delete, with Basic or Bearer auth, `errors[]` failure bodies and a
token-bucket rate limit per credential."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from exporter.simulator.faults import Faults, drift
from exporter.simulator.lenses import json_response, request_id_of
from exporter.simulator.options import SimulatorOptions
from exporter.simulator.world import SELF_BASE, UnknownObject, World, encode, valid_agent_name

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_PAGE_TOKEN = 255
ORGANIZATION = "/sql/v1/organizations/{organization}/environments/{environment}"
LISTING_PATH = ORGANIZATION + "/agents"
DATABASE_PATH = ORGANIZATION + "/databases/{database}/agents"
CHALLENGE = 'Basic error="invalid_key", error_description="The API Key is invalid"'


def failure(
    request: web.Request,
    status: int,
    title: str,
    *,
    code: str | None = None,
    detail: str | None = None,
    parameter: str | None = None,
    pointer: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A Confluent failure body: `{"errors": [{id, status, code, title, detail, source}]}`."""
    entry: dict[str, Any] = {"id": request_id_of(request), "status": str(status)}
    if code:
        entry["code"] = code
    entry["title"] = title
    if detail:
        entry["detail"] = detail
    if parameter or pointer:
        entry["source"] = {"parameter": parameter} if parameter else {"pointer": pointer}
    return web.Response(
        status=status, body=encode({"errors": [entry]}), content_type="application/json", headers=headers
    )


def make_page_token(after: tuple[str, str], size: int, page: int) -> str:
    """An opaque cursor: the sort key of the last agent given, the page size and the next page's number."""
    raw = json.dumps({"c": after[0], "n": after[1], "s": size, "p": page}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_page_token(token: str) -> tuple[tuple[str, str], int, int] | None:
    """The cursor, page size and page number in a token; None when it is not one of ours."""
    if not token or len(token) > MAX_PAGE_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(decoded, dict):
        return None
    created, name, size, page = decoded.get("c"), decoded.get("n"), decoded.get("s"), decoded.get("p")
    if not (
        isinstance(created, str) and isinstance(name, str) and isinstance(size, int) and isinstance(page, int)
    ):
        return None
    if not (1 <= size <= MAX_PAGE_SIZE and page >= 2):
        return None
    return (created, name), size, page


def listing_page(request: web.Request) -> int | None:
    """The page number a listing request asks for (1 without a token; None if the token is garbled)."""
    token = request.query.get("page_token")
    if not token:
        return 1
    parsed = read_page_token(token)
    return parsed[2] if parsed else None


class TokenBuckets:
    """One token bucket per credential; sizes read from the faults so tests can tighten them."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._buckets: dict[str, tuple[float, float]] = {}

    def remaining(self, credential: str) -> int:
        """Whole requests left in the credential's bucket now."""
        capacity = max(1.0, self.faults.rate_limit_capacity)
        tokens, _ = self._buckets.get(hashlib.sha256(credential.encode()).hexdigest(), (capacity, 0.0))
        return int(tokens)

    def take(self, credential: str) -> float | None:
        """Spend one token; None when allowed, else the seconds until one is back."""
        capacity = max(1.0, self.faults.rate_limit_capacity)
        rate = self.faults.rate_limit_per_second
        key = hashlib.sha256(credential.encode()).hexdigest()
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate if rate > 0 else 60.0


def rate_limit_headers(limit: float, wait: float) -> dict[str, str]:
    """429 headers: Retry-After and X-RateLimit-Limit/Remaining/Reset (Reset in relative seconds)."""
    seconds = str(max(1, math.ceil(wait)))
    return {
        "Retry-After": seconds,
        "X-RateLimit-Limit": str(int(limit)),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": seconds,
    }


class ConfluentApi:
    """Handlers of the Flink agents routes."""

    def __init__(self, world: World, faults: Faults, options: SimulatorOptions) -> None:
        self.world = world
        self.faults = faults
        self.options = options
        self.buckets = TokenBuckets(faults)

    def routes(self) -> list[web.RouteDef]:
        """The listing and the per-database agent routes."""
        return [
            web.get(LISTING_PATH, self.list_agents),
            web.post(DATABASE_PATH, self.create_agent),
            web.get(DATABASE_PATH + "/{name}", self.get_agent),
            web.put(DATABASE_PATH + "/{name}", self.update_agent),
            web.delete(DATABASE_PATH + "/{name}", self.delete_agent),
        ]

    # ----- checks -----------------------------------------------------------------------------------

    def _credential_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self.options.confluent_token is not None and value == self.options.confluent_token
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            return decoded == f"{self.options.confluent_api_key}:{self.options.confluent_api_secret}"
        return False

    def refused(self, request: web.Request) -> web.Response | None:
        """401 without valid credentials, 429 when the credential's bucket is empty, else None."""
        header = request.headers.get("Authorization", "")
        if not self._credential_ok(header):
            return failure(
                request,
                401,
                "Authentication Required",
                code="user_unauthenticated",
                detail="Valid authentication credentials must be provided",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        wait = self.buckets.take(header)
        if wait is not None:
            return web.Response(status=429, headers=rate_limit_headers(self.faults.rate_limit_capacity, wait))
        return None

    def missing(self, request: web.Request) -> web.Response | None:
        """404 for an unknown organization or environment."""
        info = request.match_info
        if info["organization"] != self.world.organization_id or not self.world.has_confluent_environment(
            info["environment"]
        ):
            return failure(request, 404, "Not Found")
        return None

    def _unknown_database(self, request: web.Request) -> web.Response | None:
        info = request.match_info
        if info["database"] not in self.world.kafka_cluster_ids.get(info["environment"], []):
            return failure(request, 404, "Not Found")
        return None

    @staticmethod
    def base_of(request: web.Request) -> str:
        """Scheme and host the client used, for absolute links."""
        return f"{request.scheme}://{request.host}"

    def _render(self, agents: list[bytes], base: str) -> bytes:
        if self.faults.schema_drift:
            agents = [encode(drift(json.loads(agent), self.faults.rng)) for agent in agents]
        return b",".join(agents).replace(SELF_BASE.encode(), base.encode())

    # ----- listing ----------------------------------------------------------------------------------

    async def list_agents(self, request: web.Request) -> web.StreamResponse:
        """The paged `AgentList`, sorted by (`metadata.created_at`, `name`), `metadata.next` absolute."""
        if refused := self.refused(request) or self.missing(request):
            return refused
        target = self.faults.confluent_redirect_to
        if target and urlsplit(target).netloc != request.host:
            raise web.HTTPTemporaryRedirect(target.rstrip("/") + request.path_qs)
        size = DEFAULT_PAGE_SIZE
        raw_size = request.query.get("page_size")
        if raw_size is not None:
            try:
                size = int(raw_size)
            except ValueError:
                size = -1
            if not 1 <= size <= MAX_PAGE_SIZE:
                return failure(
                    request,
                    400,
                    "Invalid Page Size",
                    code="invalid_page_size",
                    detail=f"page_size must be between 1 and {MAX_PAGE_SIZE}",
                    parameter="page_size",
                )
        after: tuple[str, str] | None = None
        page = 1
        token = request.query.get("page_token")
        if token is not None:
            parsed = read_page_token(token)
            if parsed is None:
                return failure(
                    request,
                    400,
                    "Invalid Page Token",
                    code="invalid_page_token",
                    detail="The page token is malformed or has expired",
                    parameter="page_token",
                )
            after, size, page = parsed
        environment = request.match_info["environment"]
        agents, total, last = self.world.agent_page(environment, after, size)
        base = self.base_of(request)
        listing = base + request.path
        metadata: dict[str, Any] = {
            "first": f"{listing}?{urlencode({'page_size': size})}",
            "total_size": total,
        }
        if last is not None:
            next_token = make_page_token(last, size, page + 1)
            if self.faults.confluent_repeat_token and token is not None:
                next_token = token
            metadata["next"] = f"{listing}?{urlencode({'page_size': size, 'page_token': next_token})}"
        elif self.faults.confluent_last_next != "absent":
            metadata["next"] = "" if self.faults.confluent_last_next == "empty" else None
        body = (
            b'{"api_version":"sql/v1","kind":"AgentList","metadata":'
            + encode(metadata)
            + b',"data":['
            + self._render(agents, base)
            + b"]}"
        )
        response = json_response(body)
        # As Confluent does, every answer says what is left of the budget, not only a 429.
        response.headers["X-RateLimit-Limit"] = str(int(self.faults.rate_limit_capacity))
        response.headers["X-RateLimit-Remaining"] = str(
            self.buckets.remaining(request.headers.get("Authorization", ""))
        )
        return response

    # ----- single agents ----------------------------------------------------------------------------

    def _agent_response(self, request: web.Request, name: str | None = None) -> web.Response:
        info = request.match_info
        agent = self.world.agent_bytes(info["environment"], name or info["name"])
        return json_response(self._render([agent], self.base_of(request)))

    def _lookup(self, request: web.Request) -> web.Response | None:
        if refused := self.refused(request) or self.missing(request) or self._unknown_database(request):
            return refused
        info = request.match_info
        try:
            self.world.agent(info["environment"], info["name"], info["database"])
        except UnknownObject:
            return failure(request, 404, "Not Found")
        return None

    async def get_agent(self, request: web.Request) -> web.StreamResponse:
        """One agent of a Kafka cluster."""
        return self._lookup(request) or self._agent_response(request)

    async def create_agent(self, request: web.Request) -> web.StreamResponse:
        """Create an agent in a Kafka cluster: `{"name": ..., "spec": {...}}`."""
        if refused := self.refused(request) or self.missing(request) or self._unknown_database(request):
            return refused
        body = await self._body(request)
        if not isinstance(body, dict):
            return failure(request, 400, "Bad Request", code="invalid_body", detail="expected a JSON object")
        name = body.get("name")
        if not valid_agent_name(name):
            return failure(
                request,
                400,
                "Invalid Name",
                code="invalid_name",
                detail="invalid agent name",
                pointer="/name",
            )
        assert isinstance(name, str)
        raw_spec = body.get("spec")
        spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
        tools = spec.get("tools")
        if tools is not None and not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
            return failure(request, 400, "Invalid Spec", code="invalid_spec", pointer="/spec/tools")
        info = request.match_info
        try:
            self.world.add_agent(
                info["environment"],
                name,
                phase="READY",
                model=spec.get("model") if isinstance(spec.get("model"), str) else None,
                tools=tools,
                kafka_cluster_id=info["database"],
                **{key: spec[key] for key in ("description", "prompt", "properties") if key in spec},
            )
        except ValueError:
            return failure(request, 409, "Conflict", code="already_exists", detail=f"agent {name!r} exists")
        return self._agent_response(request, name)

    async def update_agent(self, request: web.Request) -> web.StreamResponse:
        """Update an agent's spec; a stale `metadata.resource_version` answers 409."""
        if refused := self._lookup(request):
            return refused
        body = await self._body(request)
        if not isinstance(body, dict):
            return failure(request, 400, "Bad Request", code="invalid_body", detail="expected a JSON object")
        info = request.match_info
        current = self.world.agent(info["environment"], info["name"])
        metadata = body.get("metadata")
        version = metadata.get("resource_version") if isinstance(metadata, dict) else None
        if version is not None and version != current["metadata"]["resource_version"]:
            return failure(
                request, 409, "Conflict", code="conflict", detail="resource_version is stale: read it again"
            )
        spec = body.get("spec")
        if isinstance(spec, dict):
            self.world.replace_agent_spec(info["environment"], info["name"], spec)
        return self._agent_response(request)

    async def delete_agent(self, request: web.Request) -> web.StreamResponse:
        """Delete an agent: 204."""
        if refused := self._lookup(request):
            return refused
        info = request.match_info
        self.world.delete_agent(info["environment"], info["name"])
        return web.Response(status=204)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        try:
            return json.loads(await request.read() or b"null")
        except ValueError:
            return None
