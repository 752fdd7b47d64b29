"""What an upstream failure is: `UpstreamError` with a short bounded reason, and how one is made from an
error answer (its request id, the upstream's own error type and title, the wait it asked for), a transport
failure, an untrusted certificate or an exceeded deadline. Everything from the upstream is cleaned and cut
before it reaches a message."""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import math
import re
import ssl
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

import httpx

from exporter import decode

MAX_RETRY_AFTER = 300.0
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


def deadline_exceeded(endpoint: str, deadline: float) -> UpstreamError:
    """A request that did not complete within its total deadline: `timeout`, not to be retried."""
    return UpstreamError(
        "timeout",
        f"{endpoint}: no complete answer within the request deadline ({deadline:g}s)",
        endpoint=endpoint,
        final=True,
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
