"""What every upstream client shares: the httpx client, bounded JSON fetches, a retry policy that honours
Retry-After, and redirects that never leak credentials. The errors they raise are `exporter.upstream_errors`'
(re-exported here)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from exporter import decode, memory
from exporter.config import TLSSettings
from exporter.inflate import InflateError, Inflater
from exporter.telemetry import Telemetry
from exporter.upstream_errors import (
    UpstreamError,
    deadline_exceeded,
    http_error,
    request_id_of,
    transport_error,
)

MAX_REDIRECTS = 5
USER_AGENT = "lenses-hq-exporter"

LISTING_BATCH = 100
"""Objects of a listing decoded and rendered between two yields to the event loop, so that scrapes and
stream events get in during a large listing."""


def make_client(
    timeout: float, tls: TLSSettings, *, read_timeout: float | None = None, proxy: str | None = None
) -> httpx.AsyncClient:
    """An httpx client with connect/read timeouts, TLS options and an optional explicit proxy (the
    environment's proxy variables are ignored); redirects are handled by `fetch_json`."""
    verify: ssl.SSLContext | bool
    if tls.insecure_skip_verify:
        verify = False
    else:
        verify = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, read=read_timeout if read_timeout is not None else timeout),
        verify=verify,
        follow_redirects=False,
        # Only encodings `exporter.inflate` decompresses in bounded slices.
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
        trust_env=False,
        proxy=proxy or None,
    )


def same_host(original: httpx.URL, new: httpx.URL) -> bool:
    """Redirect policy: credentials follow only to the very same scheme, host and port."""
    return (original.scheme, original.host, original.port) == (new.scheme, new.host, new.port)


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    source: str,
    endpoint: str,
    telemetry: Telemetry,
    max_bytes: int,
    auth_headers: Callable[[], dict[str, str]],
    params: Mapping[str, str] | None = None,
    credentials_follow: Callable[[httpx.URL, httpx.URL], bool] = same_host,
    on_response: Callable[[httpx.Response], None] | None = None,
    deadline: float | None = None,
    decoder: Callable[[bytes], Any] = decode.loads,
) -> tuple[Any, str]:
    """GET a JSON document; returns (decoded body, request id). `on_response` sees every answer's headers
    (errors and redirects included).

    The body is read up to `max_bytes` (on the wire, and again once decompressed) and decoded by `decoder`
    (`decode.loads`, or `decode.listing` for a listing read an item at a time). The whole request,
    redirects, headers and body included, must complete within `deadline` seconds, or it fails as `timeout`
    and is not retried. Redirects are followed up to five times; the auth headers are sent to the new
    location only when `credentials_follow(original, new)` allows it, otherwise the fetch fails without
    sending them. Every failure is counted and raised as `UpstreamError`.
    """
    telemetry.requests.labels(source, endpoint).inc()
    try:
        async with asyncio.timeout(deadline) as scope:
            return await _fetch(
                client,
                url,
                endpoint,
                max_bytes,
                auth_headers,
                params,
                credentials_follow,
                decoder,
                on_response,
            )
    except TimeoutError:
        if deadline is None or not scope.expired():
            raise
        memory.note_failure()
        error = deadline_exceeded(endpoint, deadline)
        telemetry.failures.labels(source, endpoint, error.reason).inc()
        raise error from None
    except UpstreamError as error:
        memory.note_failure()
        telemetry.failures.labels(source, endpoint, error.reason).inc()
        raise
    except Exception:
        memory.note_failure()
        raise


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    endpoint: str,
    max_bytes: int,
    auth_headers: Callable[[], dict[str, str]],
    params: Mapping[str, str] | None,
    credentials_follow: Callable[[httpx.URL, httpx.URL], bool],
    decoder: Callable[[bytes], Any],
    on_response: Callable[[httpx.Response], None] | None = None,
) -> tuple[Any, str]:
    original = httpx.URL(url, params=params)
    target = original
    for _ in range(MAX_REDIRECTS + 1):
        headers = auth_headers() if credentials_follow(original, target) or target == original else {}
        try:
            async with client.stream("GET", target, headers=headers) as response:
                body = await _read_capped(response, max_bytes, endpoint)
        except httpx.TransportError as error:
            raise transport_error(endpoint, error) from None
        request_id = request_id_of(response, body)
        if on_response is not None:
            on_response(response)
        if response.is_redirect:
            location = response.headers.get("location", "")
            new = target.join(location)
            if not credentials_follow(original, new):
                raise UpstreamError(
                    "redirect_refused",
                    f"{endpoint}: redirected to {new.scheme}://{new.host}, not trusted with credentials",
                    endpoint=endpoint,
                    status=response.status_code,
                    request_id=request_id,
                )
            target = new
            continue
        if response.status_code >= 400:
            raise http_error(endpoint, response, body)
        content_type = response.headers.get("content-type", "application/json").lower()
        if "json" not in content_type:
            raise UpstreamError(
                "content_type",
                f"{endpoint}: expected JSON, got {content_type.split(';')[0][:60]!r}",
                endpoint=endpoint,
                status=response.status_code,
                request_id=request_id,
            )
        try:
            return decoder(body), request_id
        except ValueError as error:  # decode.InvalidJSON: its message names what is wrong, never the body
            raise UpstreamError(
                "decode",
                f"{endpoint}: {error}",
                endpoint=endpoint,
                status=response.status_code,
                request_id=request_id,
            ) from None
    raise UpstreamError(
        "redirect_loop", f"{endpoint}: more than {MAX_REDIRECTS} redirects", endpoint=endpoint
    )


async def _read_capped(response: httpx.Response, max_bytes: int, endpoint: str) -> bytes:
    return await read_bounded(response, max_bytes, endpoint)


async def read_bounded(
    response: httpx.Response, max_bytes: int, endpoint: str, *, truncate: bool = False
) -> bytes:
    """The body, at most `max_bytes` on the wire and at most `max_bytes` decompressed, decompressed a slice
    at a time with a turn of the event loop in between. Beyond a cap it fails as `too_large`, or, with
    `truncate`, returns what it has (an error body, read only for its request id)."""
    try:
        inflater = Inflater(response.headers.get("content-encoding", ""))
    except InflateError as error:
        raise _body_error(response, "decode", f"{endpoint}: {error}", endpoint) from None
    chunks: list[bytes] = []
    try:
        return await _read_into(response, max_bytes, endpoint, truncate, inflater, chunks)
    finally:
        chunks.clear()  # a failure's traceback keeps this frame: it must not keep the body too


async def _read_into(
    response: httpx.Response,
    max_bytes: int,
    endpoint: str,
    truncate: bool,
    inflater: Inflater,
    chunks: list[bytes],
) -> bytes:
    size = 0
    try:
        async for raw in response.aiter_raw():
            if inflater.wire + len(raw) > max_bytes:
                if truncate:
                    break
                raise _too_large(response, max_bytes, endpoint, "on the wire")
            for piece in inflater.feed(raw):
                size += len(piece)
                if size > max_bytes:
                    if truncate:
                        chunks.append(piece[: len(piece) - (size - max_bytes)])
                        return b"".join(chunks)
                    raise _too_large(response, max_bytes, endpoint, "decompressed")
                chunks.append(piece)
                if inflater.compressed:
                    await asyncio.sleep(0)  # inflating hundreds of megabytes must not freeze the loop
    except InflateError as error:
        if truncate:
            return b"".join(chunks)
        raise _body_error(response, error.reason, f"{endpoint}: {error}", endpoint) from None
    return b"".join(chunks)


def _too_large(response: httpx.Response, max_bytes: int, endpoint: str, where: str) -> UpstreamError:
    return _body_error(
        response, "too_large", f"{endpoint}: body larger than {max_bytes} bytes {where}", endpoint
    )


def _body_error(response: httpx.Response, reason: str, message: str, endpoint: str) -> UpstreamError:
    return UpstreamError(
        reason, message, endpoint=endpoint, status=response.status_code, request_id=request_id_of(response)
    )


def _wait_for(fallback: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, UpstreamError) and error.retry_after is not None:
            return error.retry_after
        return fallback(state)

    return wait


def retrying(
    attempts: int = 4,
    max_backoff: float = 30.0,
    initial: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """Retry retryable `UpstreamError`s: wait what the upstream asked (Retry-After / X-RateLimit-Reset),
    else capped exponential backoff with jitter. Non-retryable errors (401, 403, 404, decode) raise at
    once. `sleep` replaces `asyncio.sleep` (tests record the waits instead of waiting)."""
    policy = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retryable),
        wait=_wait_for(wait_exponential_jitter(multiplier=initial, max=max_backoff, jitter=initial)),
        stop=stop_after_attempt(attempts),
        reraise=True,
    )
    return policy if sleep is None else policy.copy(sleep=sleep)


__all__ = [  # the errors are re-exported: every client imports them from here
    "LISTING_BATCH",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "UpstreamError",
    "deadline_exceeded",
    "fetch_json",
    "http_error",
    "make_client",
    "read_bounded",
    "request_id_of",
    "retrying",
    "same_host",
    "transport_error",
]
