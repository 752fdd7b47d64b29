"""The Confluent agents client against a small scripted server on loopback: paging, retries, auth, probe."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.config import ConfluentTarget
from exporter.config.secrets import Secret
from exporter.confluent.client import (
    ConfluentClient,
    ListingError,
    credentials_may_follow,
    page_token_of,
    probe,
)
from exporter.telemetry import Telemetry
from exporter.upstream import UpstreamError

ORGANIZATION = "7f5c1a2e-0000-4000-8000-000000000001"
ENVIRONMENT = "env-abc123"
MISSING = "missing"
LISTING = f"/sql/v1/organizations/{ORGANIZATION}/environments/{ENVIRONMENT}/agents"


@dataclass
class Reply:
    """A scripted answer for one request instead of the page."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    stall: bool = False


@dataclass
class FakeConfluent:
    """Serves `agents` in pages; `script[page]` holds replies to give (in order) before that page."""

    agents: int = 0
    next_host: str = "https://elsewhere.example.invalid"
    script: dict[int, list[Reply]] = field(default_factory=dict)
    always: dict[int, Reply] = field(default_factory=dict)
    next_override: dict[int, Any] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)
    never: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        size = int(request.query.get("page_size", "10"))
        token = request.query.get("page_token")
        offset = int(base64.urlsafe_b64decode(token)) if token else 0
        page = offset // size + 1
        reply = self.always.get(page)
        if reply is None and self.script.get(page):
            reply = self.script[page].pop(0)
        if reply is not None:
            if reply.stall:
                await self.never.wait()
            return web.Response(
                status=reply.status,
                headers={"X-Request-Id": f"req-{len(self.requests)}", **reply.headers},
                text=reply.body,
                content_type="application/json",
            )
        names = [f"agent-{i:05d}" for i in range(offset, min(offset + size, self.agents))]
        following = offset + size
        metadata: dict[str, Any] = {"total_size": self.agents}
        if page in self.next_override:
            if self.next_override[page] != MISSING:
                metadata["next"] = self.next_override[page]
        elif following < self.agents:
            next_token = base64.urlsafe_b64encode(str(following).encode()).decode()
            metadata["next"] = f"{self.next_host}{LISTING}?page_size={size}&page_token={next_token}"
        body = {
            "api_version": "sql/v1",
            "kind": "AgentList",
            "metadata": metadata,
            "data": [{"name": name, "spec": {"model": "m"}, "status": {"phase": "READY"}} for name in names],
        }
        return web.json_response(body, headers={"X-Request-Id": f"req-{len(self.requests)}"})


class Waits:
    """A retry sleep that records how long it was asked to wait, and returns at once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeConfluent, str]]:
    state = FakeConfluent()
    app = web.Application()
    app.router.add_get(LISTING, state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield state, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def target_for(url: str, **overrides: Any) -> ConfluentTarget:
    base = ConfluentTarget(
        name="prod-flink",
        url=url,
        organization_id=ORGANIZATION,
        environment_id=ENVIRONMENT,
        api_key=Secret("key"),
        api_secret=Secret("secret"),
        timeout=2.0,
    )
    return replace(base, **overrides)


def requests_counted(telemetry: Telemetry) -> float:
    return telemetry.requests.labels("confluent", "agents")._value.get()


@pytest.mark.parametrize("count", [0, 1, 100, 101, 250])
async def test_every_page_is_listed_once(fake: tuple[FakeConfluent, str], count: int) -> None:
    state, url = fake
    state.agents = count
    telemetry = Telemetry()
    client = ConfluentClient(target_for(url), telemetry, sleep=Waits())
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    names = [item["name"] for item in listing.items]
    assert names == [f"agent-{i:05d}" for i in range(count)]
    expected_pages = max(1, math.ceil(count / 100))
    assert listing.pages == expected_pages == len(state.requests) == requests_counted(telemetry)
    assert all(r.query["page_size"] == "100" for r in state.requests)
    assert "page_token" not in state.requests[0].query


async def test_next_pages_go_to_the_configured_base_url(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 150  # `next` points at a host that does not resolve: following it would fail
    client = ConfluentClient(target_for(url), Telemetry(), sleep=Waits())
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    assert len(listing.items) == 150
    assert state.requests[1].query["page_token"] == base64.urlsafe_b64encode(b"100").decode()


@pytest.mark.parametrize("last", [None, "", MISSING])
async def test_missing_empty_or_null_next_ends_the_listing(
    fake: tuple[FakeConfluent, str], last: Any
) -> None:
    state, url = fake
    state.agents = 500
    state.next_override[2] = last
    client = ConfluentClient(target_for(url), Telemetry(), sleep=Waits())
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    assert listing.pages == 2 and len(listing.items) == 200


@pytest.mark.parametrize(
    ("metadata", "token"),
    [
        ({}, None),
        ({"next": None}, None),
        ({"next": ""}, None),
        (None, None),
        ({"next": "https://x.confluent.cloud/agents?page_size=100&page_token=abc%3D"}, "abc="),
    ],
)
def test_page_token_of(metadata: Any, token: str | None) -> None:
    assert page_token_of(metadata) == token


@pytest.mark.parametrize("bad", [5, "https://x.confluent.cloud/agents?page_size=100", "::::"])
def test_a_next_link_without_a_token_is_a_decode_error(bad: Any) -> None:
    with pytest.raises(UpstreamError) as raised:
        page_token_of({"next": bad})
    assert raised.value.reason == "decode"


async def test_a_repeated_page_token_fails_the_listing(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 1000
    loop = f"{url}{LISTING}?page_token=" + base64.urlsafe_b64encode(b"200").decode()
    state.next_override[3] = loop  # page 3 points back at itself
    telemetry = Telemetry()
    client = ConfluentClient(target_for(url), telemetry, sleep=Waits())
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.reason == "page_loop"
    assert "already seen" in raised.value.message
    assert len(state.requests) == 3
    assert failures_counted(telemetry, "page_loop") == 1


async def test_more_pages_than_max_pages_fails_the_listing(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 1000
    telemetry = Telemetry()
    client = ConfluentClient(target_for(url, max_pages=3), telemetry, sleep=Waits())
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.reason == "too_many_pages"
    assert "max_pages=3" in raised.value.message
    assert len(state.requests) == 3
    assert failures_counted(telemetry, "too_many_pages") == 1


def failures_counted(telemetry: Telemetry, reason: str) -> float | None:
    return telemetry.registry.get_sample_value(
        "lenses_hq_exporter_upstream_request_failures_total",
        {"source": "confluent", "endpoint": "agents", "reason": reason},
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "1"}, 1.0), ({"X-RateLimit-Reset": "2", "X-RateLimit-Remaining": "0"}, 2.0)],
)
async def test_rate_limit_waits_what_the_upstream_asks(
    fake: tuple[FakeConfluent, str], headers: dict[str, str], expected: float
) -> None:
    state, url = fake
    state.agents = 500
    state.script[3] = [Reply(429, headers)]
    waits = Waits()
    telemetry = Telemetry()
    client = ConfluentClient(target_for(url), telemetry, sleep=waits)
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    assert waits.seconds == [expected]
    assert listing.waited == expected
    assert listing.pages == 5 and listing.attempts == 6 and len(listing.items) == 500
    assert telemetry.failures.labels("confluent", "agents", "http_429")._value.get() == 1


async def test_rate_limit_without_headers_backs_off(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 10
    state.script[1] = [Reply(429), Reply(429)]
    waits = Waits()
    client = ConfluentClient(target_for(url), Telemetry(), sleep=waits)
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    assert len(listing.items) == 10
    assert len(waits.seconds) == 2
    first, second = waits.seconds
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 1.5  # 0.5 * 2**n plus up to 0.5 of jitter


async def test_server_errors_are_retried_then_give_up(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 10
    state.always[1] = Reply(500, body='{"errors": [{"status": "500", "title": "Oops"}]}')
    waits = Waits()
    client = ConfluentClient(target_for(url), Telemetry(), sleep=waits)
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.reason == "http_5xx" and raised.value.status == 500
    assert raised.value.request_id == "req-4"
    assert len(state.requests) == 4 and len(waits.seconds) == 3


async def test_a_timeout_is_retried(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 3
    state.script[1] = [Reply(200, stall=True)]
    waits = Waits()
    client = ConfluentClient(target_for(url, timeout=0.3), Telemetry(), sleep=waits)
    try:
        listing = await client.list_agents()
    finally:
        await client.aclose()
    assert len(listing.items) == 3 and len(state.requests) == 2 and len(waits.seconds) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried(fake: tuple[FakeConfluent, str], status: int) -> None:
    state, url = fake
    state.script[1] = [Reply(status)]
    waits = Waits()
    client = ConfluentClient(target_for(url), Telemetry(), sleep=waits)
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.status == status and raised.value.request_id == "req-1" and raised.value.page == 1
    assert len(state.requests) == 1 and waits.seconds == []


@pytest.mark.parametrize("body", ['{"data": "nope"}', "[]", '{"metadata": {}}', "not json"])
async def test_a_page_without_a_data_list_fails(fake: tuple[FakeConfluent, str], body: str) -> None:
    state, url = fake
    state.script[1] = [Reply(200, body=body)]
    client = ConfluentClient(target_for(url), Telemetry(), sleep=Waits())
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.reason == "decode"
    assert len(state.requests) == 1


async def test_basic_auth_from_key_and_secret(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    client = ConfluentClient(target_for(url), Telemetry())
    try:
        await client.list_agents()
    finally:
        await client.aclose()
    assert state.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"key:secret").decode()


async def test_bearer_token_is_read_from_its_file_on_every_request(
    fake: tuple[FakeConfluent, str], tmp_path: Path
) -> None:
    state, url = fake
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    target = target_for(url, api_key=None, api_secret=None, token=Secret(file=token_file))
    client = ConfluentClient(target, Telemetry())
    try:
        await client.list_agents()
        token_file.write_text("rotated-token-longer\n")
        await client.list_agents()
    finally:
        await client.aclose()
    assert [r.headers["Authorization"] for r in state.requests] == [
        "Bearer first-token",
        "Bearer rotated-token-longer",
    ]


async def test_an_unreadable_secret_fails_without_a_request(
    fake: tuple[FakeConfluent, str], tmp_path: Path
) -> None:
    state, url = fake
    target = target_for(url, api_secret=Secret(file=tmp_path / "missing"))
    client = ConfluentClient(target, Telemetry(), sleep=Waits())
    try:
        with pytest.raises(ListingError) as raised:
            await client.list_agents()
    finally:
        await client.aclose()
    assert raised.value.reason == "credentials" and "missing" in raised.value.message
    assert state.requests == []


@pytest.mark.parametrize(
    ("original", "new", "allowed"),
    [
        (
            "https://flink.us-east-1.aws.confluent.cloud/a",
            "https://flink.eu-west-1.aws.confluent.cloud/b",
            True,
        ),
        ("https://flink.us-east-1.aws.confluent.cloud/a", "https://x.private.confluent.cloud:8443/b", True),
        (
            "https://flink.us-east-1.aws.confluent.cloud/a",
            "https://FLINK.US-EAST-1.AWS.CONFLUENT.CLOUD./b",
            True,
        ),
        ("https://gateway.corp.example/a", "https://gateway.corp.example:443/b", True),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b", True),
        # Another port of the configured host is another service: no credentials.
        ("https://gateway.corp.example/a", "https://gateway.corp.example:8443/b", False),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:9090/b", False),
        # Confluent's own hosts only over https, whatever the configured scheme.
        (
            "http://flink.us-east-1.aws.confluent.cloud/a",
            "http://flink.eu-west-1.aws.confluent.cloud/b",
            False,
        ),
        ("http://127.0.0.1:8080/a", "https://flink.eu-west-1.aws.confluent.cloud/b", True),
        ("https://gateway.corp.example/a", "http://gateway.corp.example/b", False),
        (
            "https://flink.us-east-1.aws.confluent.cloud/a",
            "http://flink.us-east-1.aws.confluent.cloud/b",
            False,
        ),
        ("https://flink.us-east-1.aws.confluent.cloud/a", "https://evil.example.com/b", False),
        ("https://flink.us-east-1.aws.confluent.cloud/a", "https://confluent.cloud.evil.example/b", False),
        ("https://flink.us-east-1.aws.confluent.cloud/a", "https://notconfluent.cloud/b", False),
        ("https://gateway.corp.example/a", "https://other.corp.example/b", False),
    ],
)
def test_credentials_follow_only_to_trusted_hosts(original: str, new: str, allowed: bool) -> None:
    assert credentials_may_follow(httpx.URL(original), httpx.URL(new)) is allowed


async def test_probe_reports_reachable(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.agents = 250
    result = await probe(target_for(url))
    assert (result.source, result.target, result.state) == ("confluent", "prod-flink", "reachable")
    assert result.detail == "100 agents on the first page" and result.request_id == "req-1"
    assert len(state.requests) == 1


async def test_probe_reports_auth_failure(fake: tuple[FakeConfluent, str]) -> None:
    state, url = fake
    state.script[1] = [Reply(401, {"WWW-Authenticate": 'Basic error="invalid_key"'})]
    result = await probe(target_for(url))
    assert result.state == "auth failed" and result.request_id == "req-1"
    assert len(state.requests) == 1


async def test_probe_reports_unreachable(unused_tcp_port: int) -> None:
    result = await probe(target_for(f"http://127.0.0.1:{unused_tcp_port}"))
    assert result.state == "unreachable"
