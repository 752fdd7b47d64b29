"""The typed settings: every key's default is written here once, and the reader takes it from here."""

from __future__ import annotations

import base64
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exporter.config.secrets import Secret
from exporter.sharding import Shard

DEFAULT_LISTEN_ADDRESS = ":9877"
DEFAULT_TELEMETRY_PATH = "/metrics"

TIERS = ("development", "staging", "production")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")  # warn: promslog's spelling of warning
LOG_FORMATS = ("json", "logfmt", "console")


ROUNDTRIP_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
"""The units `lenses.roundtrip_duration_unit` may name, each with its length in seconds."""


def metadata_label_name(key: str) -> str:
    """The label a `lenses.metadata_labels` key becomes: `metadata_<key>`, every character that cannot be in
    a label name replaced by `_`."""
    return "metadata_" + _label_safe(key)


def agent_label_name(key: str) -> str:
    """The label a Confluent target's `labels` key becomes: `label_<key>`, every character that cannot be in
    a label name replaced by `_`."""
    return "label_" + _label_safe(key)


def _label_safe(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


@dataclass(frozen=True)
class TLSSettings:
    """Client-side TLS options for an upstream."""

    ca_file: Path | None = None
    insecure_skip_verify: bool = False


DEADLINE_FACTOR = 3
"""`request_deadline` defaults to this many times `timeout`: a few slow reads, never a trickle for ever."""


@dataclass(frozen=True)
class ObjectFilter:
    """Regular expressions, by field name, that an object's fields must all match in full."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def matches(self, values: Mapping[str, str]) -> bool:
        """Whether every pattern matches the whole of its field's value."""
        return all(pattern.fullmatch(values[name]) for name, pattern in self.patterns)


@dataclass(frozen=True)
class Selection:
    """Which objects of a target are exported: those matching `include` (when set) and not `exclude`."""

    include: ObjectFilter = field(default_factory=ObjectFilter)
    exclude: ObjectFilter = field(default_factory=ObjectFilter)

    def keeps(self, values: Mapping[str, str]) -> bool:
        """Whether an object with these field values is exported."""
        if self.include.patterns and not self.include.matches(values):
            return False
        return not (self.exclude.patterns and self.exclude.matches(values))


@dataclass(frozen=True)
class MetricsSettings:
    """Which data families are exported at all: names or globs, as kube-state-metrics' allow/deny lists."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def keeps(self, family: str) -> bool:
        """Whether a family is exported: on the allow list (when there is one) and not on the deny list."""
        if self.allow and not any(fnmatch.fnmatchcase(family, pattern) for pattern in self.allow):
            return False
        return not any(fnmatch.fnmatchcase(family, pattern) for pattern in self.deny)


class _RequestDeadline:
    """The `deadline` of a source's requests, from its `request_deadline` and `timeout` fields."""

    timeout: float
    request_deadline: float | None

    @property
    def deadline(self) -> float:
        """Seconds one request (connect, headers, whole body) may take; a live stream's opening too."""
        return self.request_deadline if self.request_deadline is not None else DEADLINE_FACTOR * self.timeout


@dataclass(frozen=True)
class LensesSettings(_RequestDeadline):
    """One Lenses HQ source."""

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
    max_body_bytes: int = 16 * 1024 * 1024  # docs/operations.md: sized for the shipped 256Mi limit
    kafka_connections_concurrency: int = 8
    selection: Selection = field(default_factory=Selection)
    """Which environments are exported, by `environment` (name) and `tier`."""
    request_deadline: float | None = None  # None: DEADLINE_FACTOR times timeout


@dataclass(frozen=True)
class ConfluentTarget(_RequestDeadline):
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
    max_body_bytes: int = 8 * 1024 * 1024  # one page of at most 100 agents
    # Optional HTTP(S) forward proxy for this target, e.g. http://proxy.corp:3128; out of the repr, since
    # it may carry a password.
    proxy_url: str = field(default="", repr=False)
    labels: tuple[str, ...] = ()
    """The agents' `metadata.labels` keys exported on `confluent_flink_agent_labels_info`."""
    selection: Selection = field(default_factory=Selection)
    """Which agents are exported, by `agent` (name) and `kafka_cluster_id`."""
    request_deadline: float | None = None  # None: DEADLINE_FACTOR times timeout


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
    additional_listen_addresses: tuple[str, ...] = ()
    telemetry_path: str = DEFAULT_TELEMETRY_PATH

    @property
    def listen_addresses(self) -> tuple[str, ...]:
        """Every address served, the first one first."""
        return (self.listen_address, *self.additional_listen_addresses)


@dataclass(frozen=True)
class ConfigWarning:
    """Something legal but unwise in the configuration; logged once logging is set up."""

    event: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Settings:
    """The whole configuration."""

    web: WebSettings = field(default_factory=WebSettings)
    lenses: LensesSettings | None = None
    """The first (or only) HQ."""
    lenses_targets: tuple[LensesSettings, ...] = ()
    """Every HQ, when several are configured; empty means `lenses` alone."""
    confluent: ConfluentSettings = field(default_factory=ConfluentSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    shard: Shard = field(default_factory=Shard)
    log_level: str = "info"
    log_format: str = "json"  # json | logfmt | console
    source: str = ""  # the config file's path, or "environment"
    warnings: tuple[ConfigWarning, ...] = ()

    @property
    def hqs(self) -> tuple[LensesSettings, ...]:
        """Every configured Lenses HQ, in configuration order."""
        if self.lenses_targets:
            return self.lenses_targets
        return (self.lenses,) if self.lenses is not None else ()

    def secrets(self) -> list[Secret]:
        """Every configured secret (for log redaction)."""
        found: list[Secret] = [hq.token for hq in self.hqs]
        for target in self.confluent.targets:
            found.extend(s for s in (target.api_key, target.api_secret, target.token) if s is not None)
        return found

    def secret_values(self) -> list[str]:
        """Every value any configured secret has had in this process (what log redaction hides), and the
        HTTP Basic credentials built from them (a logged header would show those, not the raw values)."""
        values = [value for secret in self.secrets() for value in secret.known_values()]
        for target in self.confluent.targets:
            if target.api_key is not None and target.api_secret is not None:
                values.extend(
                    base64.b64encode(f"{key}:{secret}".encode()).decode()
                    for key in target.api_key.known_values()
                    for secret in target.api_secret.known_values()
                )
            proxy_password = urlsplit(target.proxy_url).password if target.proxy_url else None
            if proxy_password:
                values.append(proxy_password)
        return values
