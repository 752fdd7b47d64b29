"""What every upstream client shares: the httpx client, bounded JSON fetches, errors that carry the
request id, a retry policy that honours Retry-After, and redirects that never leak credentials."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import math
import re
import ssl
import time
import unicodedata
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

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 300.0
USER_AGENT = "lenses-hq-exporter"

LISTING_BATCH = 100
"""Objects of a listing decoded and rendered between two yields to the event loop, so that scrapes and
stream events get in during a large listing."""

RETRYABLE_REASONS = frozenset({"timeout", "connect", "network", "http_5xx", "http_429"})

MAX_ERROR_BODY = 65536
"""An error body larger than this is not parsed for its error object (nor a listing for its request id)."""
MAX_REQUEST_ID = 200
MAX_UPSTREAM_TYPE = 64
MAX_UPSTREAM_TITLE = 200
_TYPE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.:-]+")


class UpstreamError(Exception):
    """A failed upstream call: a short bounded `reason`, the HTTP status, the upstream's request id and, when
    its error body said, its own error type and title."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        request_id: str = "",
        retry_after: float | None = None,
        upstream_type: str = "",
        upstream_title: str = "",
        final: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.endpoint = endpoint
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.upstream_type = upstream_type
        """The upstream's own error type (HQ `type`, Confluent `errors[].code`): a bounded token."""
        self.upstream_title = upstream_title
        """The upstream's own words (HQ `title`, Confluent `errors[].detail`): cleaned and cut."""
        self.final = final

    @property
    def retryable(self) -> bool:
        """Whether trying again soon may help (network trouble, 5xx, 429), unless the failure already took
        the whole request deadline (`final`): retrying it would multiply the time a sync can hang."""
        return self.reason in RETRYABLE_REASONS and not self.final

    def log_fields(self) -> dict[str, Any]:
        """Fields for a log line: endpoint, status, request id, reason, and the upstream's own error type
        and title when it gave them."""
        fields: dict[str, Any] = {
            "endpoint": self.endpoint,
            "status": self.status,
            "request_id": self.request_id,
            "reason": self.reason,
        }
        if self.upstream_type:
            fields["upstream_type"] = self.upstream_type
        if self.upstream_title:
            fields["upstream_title"] = self.upstream_title
        return fields

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
        # Only encodings `exporter.inflate` decompresses in bounded slices.
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
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


def request_id_of(response: httpx.Response, body: bytes = b"", error: dict[str, Any] | None = None) -> str:
    """The upstream's request id: the X-Request-Id header, else a JSON error body's `request_id` (HQ) or
    `errors[0].id` (Confluent); cleaned of control characters and cut, as it is printed and logged."""
    header: str = response.headers.get("x-request-id", "")
    if header:
        return clean_text(header, MAX_REQUEST_ID)
    decoded = error if error is not None else error_object(body)
    if decoded is None:
        return ""
    found = decoded.get("request_id")
    if found is None:
        found = _first_error(decoded).get("id")
    return clean_text(found, MAX_REQUEST_ID)


def error_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object from an (error) body, or None: bodies over `MAX_ERROR_BODY` are not parsed, and
    neither malformed JSON nor a nesting bomb (RecursionError) raises."""
    if not body or len(body) > MAX_ERROR_BODY or body.lstrip()[:1] != b"{":
        return None
    try:
        decoded = decode.loads(body)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _first_error(decoded: dict[str, Any]) -> dict[str, Any]:
    errors = decoded.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    return first if isinstance(first, dict) else {}


def upstream_reason(decoded: dict[str, Any] | None) -> tuple[str, str]:
    """The upstream's own (type, title) from an error object: HQ's `type` and `title`, or Confluent's first
    `errors[]` entry's `code` and `detail` (else its `title`); empty strings where absent."""
    if decoded is None:
        return "", ""
    if "errors" in decoded:
        entry = _first_error(decoded)
        kind, title = entry.get("code"), entry.get("detail") or entry.get("title")
    else:
        kind, title = decoded.get("type"), decoded.get("title")
    token = _TYPE_CHARACTERS.sub("_", clean_text(kind, MAX_UPSTREAM_TYPE)).strip("_")
    return token[:MAX_UPSTREAM_TYPE], clean_text(title, MAX_UPSTREAM_TITLE)


def clean_text(value: Any, limit: int) -> str:
    """Upstream text fit for a log line, a page or a terminal: control and format characters (newlines,
    escapes, bidirectional overrides) become spaces, runs of spaces one, and the result is cut to `limit`
    characters; anything but a string is ''."""
    if not isinstance(value, str):
        return ""
    visible = "".join(
        " " if unicodedata.category(character)[0] == "C" else character for character in value[: limit * 2]
    )
    text = " ".join(visible.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redacted(text: str, response: httpx.Response) -> str:
    """`text` without the credentials the request carried (an upstream may echo them in an error)."""
    try:
        header = response.request.headers.get("authorization", "")
    except RuntimeError:  # a response built without its request
        return text
    scheme, _, value = header.partition(" ")
    secrets = [value]
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            secrets += base64.b64decode(value, validate=True).decode("utf-8").split(":", 1)
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


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


def deadline_exceeded(endpoint: str, deadline: float) -> UpstreamError:
    """A request that did not complete within its total deadline: `timeout`, not to be retried."""
    return UpstreamError(
        "timeout",
        f"{endpoint}: no complete answer within the request deadline ({deadline:g}s)",
        endpoint=endpoint,
        final=True,
    )


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


def http_error(endpoint: str, response: httpx.Response, body: bytes = b"") -> UpstreamError:
    """An error answer (4xx/5xx) as an `UpstreamError` with its request id, the upstream's own error type
    and title when the body has an error object (in the message too, so logs, the landing page and
    `check --connect` show why), and, for 429 and 503, the wait the upstream asked for."""
    status = response.status_code
    decoded = error_object(body)
    upstream_type, title = upstream_reason(decoded)
    upstream_type, title = _redacted(upstream_type, response), _redacted(title, response)
    message = f"{endpoint}: HTTP {status}" + "".join(f": {part}" for part in (upstream_type, title) if part)
    return UpstreamError(
        reason_for_status(status),
        message,
        endpoint=endpoint,
        status=status,
        request_id=_redacted(request_id_of(response, body, decoded), response),
        retry_after=parse_retry_after(response.headers) if status in (429, 503) else None,
        upstream_type=upstream_type,
        upstream_title=title,
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
