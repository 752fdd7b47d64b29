"""The upstream JSON decoder: nesting, huge integers and invalid UTF-8 never fail more than what they feed,
and a listing is decoded one item at a time."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from exporter import decode
from exporter.config import TLSSettings
from exporter.telemetry import Telemetry
from exporter.upstream import UpstreamError, fetch_json, make_client, request_id_of

BOMB = "[" * 100_000 + "]" * 100_000


def test_nesting_beyond_the_recursion_limit_is_a_decode_error_not_a_recursion_error() -> None:
    with pytest.raises(decode.InvalidJSON, match="nested too deeply"):
        decode.loads(BOMB)
    with pytest.raises(decode.InvalidJSON):
        decode.loads(b'{"a":' + b"{" * 5000)


def test_an_integer_longer_than_python_allows_is_an_infinite_float_dropped_per_field() -> None:
    decoded = decode.loads(b'{"n": ' + b"9" * 5000 + b', "m": 12}')
    assert math.isinf(decoded["n"]) and decode.as_number(decoded["n"]) is None
    assert decoded["m"] == 12 and type(decoded["m"]) is int


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode.loads(b'{"name": "a\xff\xfeb"}') == {"name": "a\ufffd\ufffdb"}
    assert decode.loads(b'\xef\xbb\xbf{"bom": 1}') == {"bom": 1}


def test_a_listing_yields_each_item_and_stands_in_for_the_undecodable_ones() -> None:
    body = (
        '{"kind": "x", "items": [{"name": "a"}, ' + BOMB + ', {"name": "b", "n": ' + "7" * 5000 + "}, "
        '{"bad": tru}, "text", {"name": "c"}], "metadata": {"next": "later"}}'
    ).encode()
    listing = decode.listing(body, "items")
    assert listing.fields == {"kind": "x"}
    items = list(listing)
    assert [item.get("name") if isinstance(item, dict) else item for item in items[:1]] == ["a"]
    assert isinstance(items[1], decode.Undecodable) and items[1].reason == "nested too deeply"
    assert items[2]["name"] == "b" and math.isinf(items[2]["n"])
    assert isinstance(items[3], decode.Undecodable) and items[3].reason == "not valid JSON"
    assert items[4:] == ["text", {"name": "c"}]
    assert listing.fields == {"kind": "x", "metadata": {"next": "later"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "not a JSON object"),
        (b'{"items": {}}', "no `items` list"),
        (b'{"other": []}', "no `items` list"),
        (b"{}", "no `items` list"),
        (b'{"items": [', "not valid JSON"),
        (b'{"items": [{"name": "a"} {"name": "b"}]}', "not valid JSON"),
        (b'{"items": [{"name": "a"}]', "not valid JSON"),
        (b'{"items": [{"name": "a"}]} trailing', "not valid JSON"),
        (b'{"items": [' + b"[" * 5000, "not valid JSON"),
    ],
)
def test_a_broken_listing_structure_is_an_error_naming_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(decode.InvalidJSON, match=message):
        list(decode.listing(body, "items"))


@pytest.fixture
async def nested_error_server() -> AsyncIterator[str]:
    """An upstream answering 500 with an error object nested far too deep and no request id header."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            status=500, body=b'{"request_id":' + BOMB.encode() + b"}", content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_an_error_body_nested_too_deep_is_an_ordinary_http_failure(nested_error_server: str) -> None:
    telemetry = Telemetry()
    client: httpx.AsyncClient = make_client(2.0, TLSSettings())
    try:
        with pytest.raises(UpstreamError) as raised:
            await fetch_json(
                client,
                nested_error_server + "/v1/environments",
                source="lenses",
                endpoint="environments",
                telemetry=telemetry,
                max_bytes=1 << 20,
                auth_headers=dict,
            )
    finally:
        await client.aclose()
    assert raised.value.reason == "http_5xx" and raised.value.request_id == ""


def test_only_a_small_body_is_searched_for_a_request_id() -> None:
    """A listing answered without X-Request-Id is not parsed whole just to find one (at 200 MB that built the
    whole listing at once: a peak of a gigabyte)."""
    request = httpx.Request("GET", "http://upstream/v1/environments")
    small = b'{"request_id": "abc", "items": []}'
    assert request_id_of(httpx.Response(500, content=small, request=request), small) == "abc"
    large = b'{"request_id": "abc", "items": [' + b"{}," * 100_000 + b"{}]}"
    assert request_id_of(httpx.Response(200, content=large, request=request), large) == ""
