"""The Confluent Cloud Flink agents listing over HTTP: credentials on every request, paging by the token in
`metadata.next` against the configured base URL, retries that honour rate limits, and a redirect policy
that keeps credentials on Confluent's own hosts."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from tenacity import RetryCallState

from exporter import decode
from exporter.config import ConfluentTarget
from exporter.config.secrets import SecretUnavailable
from exporter.confluent.model import compact_agent
from exporter.probe import Probe, probe_from_error
from exporter.telemetry import Telemetry
from exporter.upstream import (
    UpstreamError,
    fetch_json,
    make_client,
    retrying,
    same_host,
)

log = structlog.get_logger("exporter.confluent")

SOURCE = "confluent"
ENDPOINT = "agents"
TRUSTED_DOMAIN = ".confluent.cloud"

Sleep = Callable[[float], Awaitable[None]]


def _data_listing(body: bytes) -> decode.Listing:
    return decode.listing(body, "data")


class ListingError(UpstreamError):
    """A listing that could not complete; `page` is the page it failed on (1 is the first)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        page: int,
        cause: UpstreamError | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(
            reason,
            message,
            endpoint=ENDPOINT,
            status=cause.status if cause else None,
            request_id=cause.request_id if cause else request_id,
            upstream_type=cause.upstream_type if cause else "",
            upstream_title=cause.upstream_title if cause else "",
        )
        self.page = page

    def log_fields(self) -> dict[str, Any]:
        """The upstream error's fields and the page the listing stopped on."""
        return {**super().log_fields(), "page": self.page}


@dataclass(frozen=True)
class AgentListing:
    """A complete listing: every raw agent object, and what it took to get them."""

    items: list[Any]
    pages: int
    attempts: int  # requests sent, retries included
    waited: float  # seconds spent waiting before retries (Retry-After, X-RateLimit-Reset or backoff)
    request_ids: tuple[str, ...] = ()  # the upstream's request id of each page, in order


def credentials_may_follow(original: httpx.URL, new: httpx.URL) -> bool:
    """Whether a redirect may carry the credentials: only to the very scheme, host and port configured, or
    over https to a `*.confluent.cloud` host. Another port of the same host is another service, and plain
    http is never trusted on the strength of a name."""
    if same_host(original, new):
        return True
    return new.scheme == "https" and new.host.lower().rstrip(".").endswith(TRUSTED_DOMAIN)


def page_token_of(metadata: Any) -> str | None:
    """The `page_token` of `metadata.next` (a full URL); None on the last page (no `next`, "" or null)."""
    if not isinstance(metadata, dict):
        return None
    next_url = metadata.get("next")
    if next_url is None or next_url == "":
        return None
    if not isinstance(next_url, str):
        raise UpstreamError("decode", f"{ENDPOINT}: metadata.next is not a string", endpoint=ENDPOINT)
    try:
        token = httpx.URL(next_url).params.get("page_token")
    except (httpx.InvalidURL, ValueError):  # ValueError: e.g. a lone surrogate httpx cannot encode
        token = None
    if not isinstance(token, str) or not token:
        raise UpstreamError("decode", f"{ENDPOINT}: metadata.next has no page_token", endpoint=ENDPOINT)
    return token


def listing_url(target: ConfluentTarget) -> str:
    """The agents listing under the configured base URL."""
    organization = quote(target.organization_id, safe="")
    environment = quote(target.environment_id, safe="")
    return f"{target.url.rstrip('/')}/sql/v1/organizations/{organization}/environments/{environment}/agents"


def http_client_for(target: ConfluentTarget) -> httpx.AsyncClient:
    """An httpx client with the target's timeout, TLS and proxy; targets that agree on those may share one
    (and its connections)."""
    return make_client(target.timeout, target.tls, proxy=target.proxy_url or None)


def connection_settings(target: ConfluentTarget) -> tuple[object, ...]:
    """What decides whether two targets can share an httpx client."""
    return target.timeout, target.tls, target.proxy_url


class ConfluentClient:
    """Lists the agents of one configured target (organization + environment)."""

    def __init__(
        self,
        target: ConfluentTarget,
        telemetry: Telemetry,
        *,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep | None = None,
        attempts: int = 4,
        max_backoff: float = 30.0,
    ) -> None:
        self.target = target
        self.telemetry = telemetry
        self.sleep = sleep
        self.attempts = attempts
        self.max_backoff = max_backoff
        self.url = listing_url(target)
        self._owns_http = http is None
        self._http = http or http_client_for(target)

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic from the API key and secret, else a Bearer token; secrets are read now, so a rotated
        file is picked up by the next request."""
        target = self.target
        try:
            if target.api_key is not None and target.api_secret is not None:
                pair = f"{target.api_key.get()}:{target.api_secret.get()}".encode()
                return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
            if target.token is not None:
                return {"Authorization": "Bearer " + target.token.get()}
        except SecretUnavailable as error:
            raise UpstreamError("credentials", f"{ENDPOINT}: {error}", endpoint=ENDPOINT) from None
        return {}

    async def fetch_page(self, token: str | None) -> tuple[list[Any], str | None, str]:
        """One request for one page: (raw agents, the next page's token or None, request id)."""
        params = {"page_size": str(self.target.page_size)}
        if token is not None:
            params["page_token"] = token
        headers = self.auth_headers()
        body, request_id = await fetch_json(
            self._http,
            self.url,
            source=SOURCE,
            endpoint=ENDPOINT,
            telemetry=self.telemetry,
            max_bytes=self.target.max_body_bytes,
            auth_headers=lambda: headers,
            params=params,
            credentials_follow=credentials_may_follow,
            on_response=self._note_rate_limit,
            deadline=self.target.deadline,
            decoder=_data_listing,
        )
        try:
            # Kept until the listing is complete: only what decoding reads, each item as it is decoded.
            data = [compact_agent(item) for item in body]
            next_token = page_token_of(body.fields.get("metadata"))
        except UpstreamError as error:
            error.request_id = request_id
            raise
        except decode.InvalidJSON as error:
            # Found while reading the items, after the fetch: counted as the fetch counts a decode failure.
            self.telemetry.failures.labels(SOURCE, ENDPOINT, "decode").inc()
            raise UpstreamError(
                "decode", f"{ENDPOINT}: {error}", endpoint=ENDPOINT, request_id=request_id
            ) from None
        return data, next_token, request_id

    def _note_rate_limit(self, response: httpx.Response) -> None:
        """The budget the answer reports (`X-RateLimit-Limit` / `-Remaining`), whatever its status."""
        for header, gauge in (
            ("x-ratelimit-remaining", self.telemetry.rate_limit_remaining),
            ("x-ratelimit-limit", self.telemetry.rate_limit_limit),
        ):
            value = response.headers.get(header, "").strip()
            if value.isascii() and value.isdigit():
                gauge.labels(SOURCE, self.target.name).set(int(value))

    async def list_agents(self) -> AgentListing:
        """Every page, in order, retrying each page on rate limits, 5xx and network trouble.

        Raises `ListingError` when a page fails for good, when a page token comes back a second time (the
        paging loops), or after `max_pages` pages; nothing of an incomplete listing is returned.
        """
        items: list[Any] = []
        request_ids: list[str] = []
        seen: set[str] = set()
        token: str | None = None
        pages = attempts = 0
        waited = 0.0
        while True:
            if pages >= self.target.max_pages:
                raise self._counted(
                    ListingError(
                        "too_many_pages",
                        f"{ENDPOINT}: more than max_pages={self.target.max_pages} pages; listing abandoned",
                        page=pages + 1,
                    )
                )
            policy = retrying(self.attempts, self.max_backoff, sleep=self.sleep).copy(
                before_sleep=self._log_retry
            )
            try:
                async for attempt in policy:
                    with attempt:
                        data, token, request_id = await self.fetch_page(token)
            except UpstreamError as error:
                raise ListingError(error.reason, error.message, page=pages + 1, cause=error) from None
            finally:
                attempts += policy.statistics.get("attempt_number", 1)
                waited += policy.statistics.get("idle_for", 0.0)
            pages += 1
            items.extend(data)
            request_ids.append(request_id)
            if token is None:
                return AgentListing(items, pages, attempts, waited, tuple(request_ids))
            if token in seen:
                raise self._counted(
                    ListingError(
                        "page_loop",
                        f"{ENDPOINT}: page {pages} points to a page token already seen in this listing; "
                        "the upstream's paging loops, listing abandoned",
                        page=pages,
                        request_id=request_id,
                    )
                )
            seen.add(token)

    def _counted(self, error: ListingError) -> ListingError:
        """A listing failure no request failed for (the requests each counted their own), counted like one."""
        self.telemetry.failures.labels(SOURCE, ENDPOINT, error.reason).inc()
        return error

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        fields = error.log_fields() if isinstance(error, UpstreamError) else {}
        log.debug("upstream_retry", source=SOURCE, target=self.target.name, wait_seconds=wait, **fields)

    async def aclose(self) -> None:
        """Close the connection pool, unless it was lent by the caller."""
        if self._owns_http:
            await self._http.aclose()


async def probe(target: ConfluentTarget) -> Probe:
    """`check --connect`: one request for the first page of the target's agents."""
    client = ConfluentClient(target, Telemetry())
    try:
        data, _, request_id = await client.fetch_page(None)
    except UpstreamError as error:
        return probe_from_error(SOURCE, target.name, error)
    finally:
        await client.aclose()
    return Probe(SOURCE, target.name, "reachable", f"{len(data)} agents on the first page", request_id)
