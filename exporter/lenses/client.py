"""The Lenses HQ HTTP client: Bearer auth from a (re-read) secret, bounded bodies, retries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from exporter import decode
from exporter.config import LensesSettings
from exporter.config.secrets import SecretUnavailable
from exporter.probe import Probe, probe_from_error
from exporter.telemetry import Telemetry
from exporter.upstream import (
    UpstreamError,
    fetch_json,
    make_client,
    retrying,
)

SOURCE = "lenses"


def path_segment(name: str) -> str:
    """An upstream name as one path segment: percent-encoded, dots included, so that `.` and `..` name an
    environment instead of walking the path (HTTP clients resolve dot segments before sending)."""
    return quote(name, safe="").replace(".", "%2E")


def _items_listing(body: bytes) -> decode.Listing:
    return decode.listing(body, "items")


class LensesClient:
    """Calls `{url}/v1/...` of one HQ; every failure surfaces as `UpstreamError`."""

    def __init__(self, settings: LensesSettings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.http = make_client(settings.timeout, settings.tls)
        self.stream_http = make_client(settings.timeout, settings.tls, read_timeout=settings.sse_idle_timeout)

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header with the token as it is now (a token file is re-read when it changes)."""
        try:
            token = self.settings.token.get()
        except SecretUnavailable as error:
            raise UpstreamError("secret", f"token: {error}") from None
        return {"Authorization": f"Bearer {token}"}

    @property
    def stream_url(self) -> str:
        """The live stream's URL."""
        return f"{self.settings.url}/v1/environments/live/sse"

    async def _get(
        self, path: str, endpoint: str, decoder: Callable[[bytes], Any] = decode.loads
    ) -> tuple[Any, str]:
        return await fetch_json(
            self.http,
            f"{self.settings.url}{path}",
            source=SOURCE,
            endpoint=endpoint,
            telemetry=self.telemetry,
            max_bytes=self.settings.max_body_bytes,
            auth_headers=self.auth_headers,
            deadline=self.settings.deadline,
            decoder=decoder,
        )

    async def list_environments(self) -> tuple[decode.Listing, str]:
        """Every environment as raw JSON objects, decoded one at a time as the listing is iterated (an item
        that cannot be decoded comes as `decode.Undecodable`), and the request id. Retries network trouble,
        5xx and 429."""
        async for attempt in retrying():
            with attempt:
                items, request_id = await self._get("/v1/environments", "environments", _items_listing)
        listing: decode.Listing = items
        return listing, request_id

    async def count_kafka_connections(self, environment: str) -> int:
        """How many Kafka connections an environment defines."""
        return len(await self.list_kafka_connections(environment))

    async def list_kafka_connections(self, environment: str) -> list[Any]:
        """The Kafka connections an environment defines, as HQ sends them."""
        path = f"/v1/environments/{path_segment(environment)}/kafka-connections"
        async for attempt in retrying(attempts=2):
            with attempt:
                body, request_id = await self._get(path, "kafka_connections")
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            self.telemetry.failures.labels(SOURCE, "kafka_connections", "decode").inc()
            raise UpstreamError(
                "decode",
                "kafka_connections: body has no `items` list",
                endpoint="kafka_connections",
                request_id=request_id,
            )
        return items

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self.http.aclose()
        await self.stream_http.aclose()


async def probe(settings: LensesSettings) -> Probe:
    """One listing request, for `check --connect`: reachable, auth failed, not found or unreachable."""
    client = LensesClient(settings, Telemetry())
    try:
        # Read only up to the start of its items: reachability needs no more.
        _, request_id = await client._get("/v1/environments", "environments", _items_listing)
    except UpstreamError as error:
        return probe_from_error(SOURCE, settings.name, error)
    finally:
        await client.aclose()
    return Probe(SOURCE, settings.name, "reachable", "", request_id)
