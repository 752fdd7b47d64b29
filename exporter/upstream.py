"""What every upstream client shares: the httpx client, bounded JSON fetches, errors that carry the
request id, a retry policy that honours Retry-After, and redirects that never leak credentials."""

from __future__ import annotations

import email.utils
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from exporter import decode
from exporter.config import TLSSettings
from exporter.health import Telemetry

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 300.0
MAX_REQUEST_ID_BODY = 64 * 1024
"""Largest body searched for a `request_id` when the response has no X-Request-Id header."""
USER_AGENT = "lenses-hq-exporter"

RETRYABLE_REASONS = frozenset({"timeout", "connect", "network", "http_5xx", "http_429"})


class UpstreamError(Exception):
    """A failed upstream call: a short bounded `reason`, the HTTP status and the upstream's request id."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether trying again soon may help (network trouble, 5xx, 429)."""
        return self.reason in RETRYABLE_REASONS

    def log_fields(self) -> dict[str, Any]:
        """Fields for a log line: endpoint, status, request id, reason."""
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "request_id": self.request_id,
            "reason": self.reason,
        }

    def __repr__(self) -> str:
        return f"UpstreamError({self.reason!r}, {self.message!r}, status={self.status})"


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
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        trust_env=False,
        proxy=proxy or None,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset` (relative
    seconds), capped; None when neither is usable."""
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)
    reset = headers.get("x-ratelimit-reset")
    return _seconds(reset) if reset else None


def _seconds(text: str) -> float | None:
    """A number of seconds, capped; None when not a number (`nan` included: it would never be waited)."""
    try:
        seconds = float(text.strip())
    except ValueError:
        return None
    return None if math.isnan(seconds) else min(max(seconds, 0.0), MAX_RETRY_AFTER)


def request_id_of(response: httpx.Response, body: bytes = b"") -> str:
    """The upstream's request id: the X-Request-Id header, else a JSON error body's `request_id`."""
    header: str = response.headers.get("x-request-id", "")
    if header:
        return header[:200]
    # Only a small body (an error object) is read for it: parsing a whole listing just for its request id
    # would build the entire listing at once.
    if body and len(body) <= MAX_REQUEST_ID_BODY and body.lstrip()[:1] == b"{":
        try:
            decoded = decode.loads(body)
        except ValueError:
            return ""
        found = decoded.get("request_id") if isinstance(decoded, dict) else None
        if isinstance(found, str):
            return found[:200]
    return ""


def reason_for_status(status: int) -> str:
    """A bounded failure reason for an HTTP status."""
    if status >= 500:
        return "http_5xx"
    if status in (401, 403, 404, 429):
        return f"http_{status}"
    return "http_4xx"


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
    decoder: Callable[[bytes], Any] = decode.loads,
) -> tuple[Any, str]:
    """GET a JSON document; returns (decoded body, request id).

    The body is read up to `max_bytes` and decoded by `decoder` (`decode.loads`, or `decode.listing` for a
    listing read an item at a time). Redirects are followed up to five times; the auth headers are sent
    to the new location only when `credentials_follow(original, new)` allows it, otherwise the fetch fails
    without sending them. Every failure is counted and raised as `UpstreamError`.
    """
    telemetry.requests.labels(source, endpoint).inc()
    try:
        return await _fetch(
            client, url, endpoint, max_bytes, auth_headers, params, credentials_follow, decoder
        )
    except UpstreamError as error:
        telemetry.failures.labels(source, endpoint, error.reason).inc()
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


def http_error(endpoint: str, response: httpx.Response, body: bytes = b"") -> UpstreamError:
    """An error answer (4xx/5xx) as an `UpstreamError` with its request id and, for 429 and 503, the wait
    the upstream asked for."""
    status = response.status_code
    return UpstreamError(
        reason_for_status(status),
        f"{endpoint}: HTTP {status}",
        endpoint=endpoint,
        status=status,
        request_id=request_id_of(response, body),
        retry_after=parse_retry_after(response.headers) if status in (429, 503) else None,
    )


def transport_error(
    endpoint: str, error: httpx.TransportError, request_id: str = "", timeout: str = "timed out"
) -> UpstreamError:
    """A failure below HTTP as an `UpstreamError`: `timeout`, `tls` (untrusted certificate), `connect` or
    `network`; `timeout` is the message for a timeout."""
    if isinstance(error, httpx.TimeoutException):
        return UpstreamError("timeout", f"{endpoint}: {timeout}", endpoint=endpoint, request_id=request_id)
    if isinstance(error, httpx.ConnectError):
        return certificate_failure(endpoint, error) or UpstreamError(
            "connect", f"{endpoint}: cannot connect", endpoint=endpoint, request_id=request_id
        )
    return UpstreamError(
        "network", f"{endpoint}: {type(error).__name__}", endpoint=endpoint, request_id=request_id
    )


def certificate_failure(endpoint: str, error: BaseException) -> UpstreamError | None:
    """A connection refused because the upstream's TLS certificate is not trusted, as an error that says so
    (reason `tls`, not retried: only a configuration change helps); None for any other failure."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    detail = getattr(cause, "verify_message", "") or "verification failed"
    return UpstreamError(
        "tls", f"{endpoint}: TLS certificate not trusted: {detail} (see tls.ca_file)", endpoint=endpoint
    )


async def _read_capped(response: httpx.Response, max_bytes: int, endpoint: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise UpstreamError(
                "too_large",
                f"{endpoint}: body larger than {max_bytes} bytes",
                endpoint=endpoint,
                status=response.status_code,
                request_id=request_id_of(response),
            )
        chunks.append(chunk)
    return b"".join(chunks)


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


PROBE_STATES = ("reachable", "auth failed", "not found", "unreachable", "error")


@dataclass(frozen=True)
class Probe:
    """The outcome of `check --connect` for one target."""

    source: str
    target: str
    state: str  # one of PROBE_STATES
    detail: str = ""
    request_id: str = ""


def probe_from_error(source: str, target: str, error: UpstreamError) -> Probe:
    """Classify a failed first request for `check --connect`."""
    if error.status in (401, 403):
        state = "auth failed"
    elif error.status == 404:
        state = "not found"
    elif error.reason in ("connect", "timeout", "network"):
        state = "unreachable"
    else:
        state = "error"
    return Probe(source, target, state, error.message, error.request_id)
