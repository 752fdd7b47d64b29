"""Typed settings, loaded from YAML (with ${VAR} expansion) or from the environment alone.

Every validation failure raises `ConfigError` whose message names the offending field, e.g.
`lenses.poll_interval: expected a duration like 30s, got 'soon'`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exporter.secrets import Secret
from exporter.sharding import Shard

DEFAULT_LISTEN_ADDRESS = ":9877"


class ConfigError(Exception):
    """A bad configuration: the message names the field and says why. The CLI exits 2 with it."""


@dataclass(frozen=True)
class TLSSettings:
    """Client-side TLS options for an upstream."""

    ca_file: Path | None = None
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class LensesSettings:
    """The Lenses HQ source."""

    name: str
    url: str  # base URL without a trailing slash; the client appends /v1/...
    token: Secret
    poll_interval: float = 30.0
    sse: bool = True
    kafka_connections: bool = False
    metadata_labels: tuple[str, ...] = ()
    roundtrip_duration_unit: str = "ns"  # ns | us | ms | s
    timeout: float = 10.0
    tls: TLSSettings = field(default_factory=TLSSettings)
    sse_idle_timeout: float = 45.0
    sse_max_event_bytes: int = 8 * 1024 * 1024
    sse_unavailable_probe_interval: float = 600.0  # after a 404/501 on the stream
    max_body_bytes: int = 256 * 1024 * 1024
    kafka_connections_concurrency: int = 8


@dataclass(frozen=True)
class ConfluentTarget:
    """One Confluent Cloud Flink environment to poll for agents."""

    name: str
    url: str  # base URL without a trailing slash
    organization_id: str
    environment_id: str
    api_key: Secret | None = None
    api_secret: Secret | None = None
    token: Secret | None = None
    tier: str = ""
    poll_interval: float = 60.0
    timeout: float = 10.0
    tls: TLSSettings = field(default_factory=TLSSettings)
    page_size: int = 100
    max_pages: int = 1000
    max_body_bytes: int = 64 * 1024 * 1024
    proxy_url: str = ""  # optional HTTP(S) forward proxy for this target, e.g. http://proxy.corp:3128


@dataclass(frozen=True)
class ConfluentSettings:
    """All Confluent targets, and how many are polled at once."""

    targets: tuple[ConfluentTarget, ...] = ()
    concurrency: int = 8


@dataclass(frozen=True)
class WebSettings:
    """The exporter's own listener."""

    listen_address: str = DEFAULT_LISTEN_ADDRESS
    config_file: Path | None = None


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    web: WebSettings = field(default_factory=WebSettings)
    lenses: LensesSettings | None = None
    confluent: ConfluentSettings = field(default_factory=ConfluentSettings)
    shard: Shard = field(default_factory=Shard)
    log_level: str = "info"
    log_format: str = "json"  # json | console

    def secrets(self) -> list[Secret]:
        """Every configured secret (for log redaction)."""
        found: list[Secret] = []
        if self.lenses:
            found.append(self.lenses.token)
        for target in self.confluent.targets:
            found.extend(s for s in (target.api_key, target.api_secret, target.token) if s is not None)
        return found
