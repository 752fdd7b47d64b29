"""What the web-config file asks of every request: bcrypt basic auth, a rate limit, extra response headers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt
from aiohttp import BasicAuth as BasicAuthHeader
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

REALM = "lenses-hq-exporter"

# Checked credentials remembered (both outcomes), so a scrape every second does not cost a bcrypt run each.
CACHE_SIZE = 1024

# bcrypt releases the GIL, so checks run in parallel threads: two at a time (a core each on a small pod),
# and at most this many more wait; beyond that a request is refused at once (503) instead of queueing
# behind a flood of wrong passwords.
MAX_CONCURRENT_CHECKS = 2
MAX_WAITING_CHECKS = 32

# bcrypt only ever uses a password's first 72 bytes (Go's bcrypt too); the Python binding refuses longer
# input instead of truncating, so it is truncated here to accept what exporter-toolkit accepts.
BCRYPT_MAX_PASSWORD_BYTES = 72


class BasicAuth:
    """HTTP basic auth against `basic_auth_users` (user → bcrypt hash), as exporter-toolkit does it.

    - A check's outcome is cached under an HMAC of (user, hash, password) with a per-process random key, so
      the cache never holds a password, nor a fast hash of one that could be brute-forced.
    - An unknown user is checked against one of the configured hashes, chosen by an HMAC of the name: it
      costs what some real user costs, so timing does not tell whether a name exists (with hashes of
      different costs it tells which cost class a name falls in, and the same for every try of that name).
    - bcrypt runs in threads, never on the event loop, MAX_CONCURRENT_CHECKS at a time with at most
      MAX_WAITING_CHECKS waiting; a request beyond that gets 503 at once.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        self._hashes = sorted(set(self.users.values()))
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)
        self._admitted = 0  # checks running or waiting for a slot

    def _decoy(self, user: str) -> bytes:
        """The hash an unknown user is checked against: the same one for every try of that name."""
        digest = hmac.new(self._cache_key, b"decoy\0" + user.encode(), hashlib.sha256).digest()
        return self._hashes[int.from_bytes(digest[:8], "big") % len(self._hashes)]

    def _key(self, user: str, hashed: bytes, password: bytes) -> bytes:
        mac = hmac.new(self._cache_key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()

    async def verify(self, authorization: str | None) -> bool | None:
        """Whether an `Authorization` header carries a configured user and its password; None when too many
        checks are already running or waiting (the request is refused without one)."""
        if not authorization:
            return False
        try:
            credentials = BasicAuthHeader.decode(authorization, encoding="utf-8")
        except ValueError:
            return False
        hashed = self.users.get(credentials.login)
        known = hashed is not None
        checked_hash = hashed if hashed is not None else self._decoy(credentials.login)
        password = credentials.password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]
        key = self._key(credentials.login, checked_hash, password)
        matched = self._cached(key)
        if matched is None:
            if self._admitted >= MAX_CONCURRENT_CHECKS + MAX_WAITING_CHECKS:
                return None
            self._admitted += 1
            try:
                async with self._slots:
                    matched = self._cached(key)  # the same credentials may have been checked meanwhile
                    if matched is None:
                        matched = await asyncio.to_thread(bcrypt.checkpw, password, checked_hash)
                        self._remember(key, matched)
            finally:
                self._admitted -= 1
        return known and matched

    def _cached(self, key: bytes) -> bool | None:
        matched = self._cache.get(key)
        if matched is not None:
            self._cache.move_to_end(key)
        return matched

    def _remember(self, key: bytes, matched: bool) -> None:
        self._cache[key] = matched
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def middleware(self) -> Middleware:
        """Every endpoint, /healthz included, answers 401 without valid credentials (as exporter-toolkit)."""

        @web.middleware
        async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            verified = await self.verify(request.headers.get("Authorization"))
            if verified:
                return await handler(request)
            if verified is None:
                return web.Response(
                    status=503, text="503: Too many logins being checked\n", headers={"Retry-After": "1"}
                )
            return web.Response(
                status=401,
                text="401: Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )

        return require_basic_auth


class RateLimit:
    """A token bucket over all requests: one token every `interval` seconds, at most `burst` saved up."""

    def __init__(self, interval: float, burst: int) -> None:
        self.interval = interval
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def allow(self) -> bool:
        """Take a token if one is left."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) / self.interval)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def middleware(self) -> Middleware:
        """429 once the bucket is empty."""

        @web.middleware
        async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.allow():
                return web.Response(status=429, text="429: Too Many Requests\n")
            return await handler(request)

        return rate_limit
