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

# bcrypt only ever uses a password's first 72 bytes (Go's bcrypt too); the Python binding refuses longer
# input instead of truncating, so it is truncated here to accept what exporter-toolkit accepts.
BCRYPT_MAX_PASSWORD_BYTES = 72


def bcrypt_cost(hashed: bytes) -> int:
    """The cost factor of a `$2a$`/`$2b$`/`$2y$` hash (validated beforehand)."""
    return int(hashed[4:6])


class BasicAuth:
    """HTTP basic auth against `basic_auth_users` (user → bcrypt hash), as exporter-toolkit does it.

    - A check's outcome is cached under an HMAC of (user, hash, password) with a per-process random key, so
      the cache never holds a password, nor a fast hash of one that could be brute-forced.
    - An unknown user is checked against the costliest configured hash and refused whatever the outcome,
      so a first attempt takes as long for an unknown user as for a known one.
    - bcrypt runs in a thread, one at a time (it is CPU-bound: ~80 ms at cost 10), never on the event loop.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self.users = dict(users)
        self._decoy = max(self.users.values(), key=bcrypt_cost)
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = asyncio.Lock()

    def _key(self, user: str, hashed: bytes, password: bytes) -> bytes:
        mac = hmac.new(self._cache_key, digestmod=hashlib.sha256)
        for part in (user.encode(), hashed, password):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()

    async def verify(self, authorization: str | None) -> bool:
        """Whether an `Authorization` header carries a configured user and its password."""
        if not authorization:
            return False
        try:
            credentials = BasicAuthHeader.decode(authorization, encoding="utf-8")
        except ValueError:
            return False
        hashed = self.users.get(credentials.login)
        known = hashed is not None
        checked_hash = hashed if hashed is not None else self._decoy
        password = credentials.password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]
        key = self._key(credentials.login, checked_hash, password)
        matched = self._cached(key)
        if matched is None:
            async with self._lock:
                matched = self._cached(key)
                if matched is None:
                    matched = await asyncio.to_thread(bcrypt.checkpw, password, checked_hash)
                    self._remember(key, matched)
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
            if await self.verify(request.headers.get("Authorization")):
                return await handler(request)
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
