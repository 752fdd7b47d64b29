"""Typed settings, loaded from YAML (with ${VAR} expansion) or from the environment alone.

Every validation failure raises `ConfigError` whose message names the offending field, e.g.
`lenses.poll_interval: expected a duration like 30s, got 'soon'`.
"""

from __future__ import annotations

import base64
import difflib
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exporter.config.files import MAX_CONFIG_BYTES, UnreadableFile, check_regular, read_regular
from exporter.config.secrets import Secret, SecretUnavailable, header_safe
from exporter.confluent.metrics import FAMILY_NAMES as CONFLUENT_FAMILIES
from exporter.confluent.metrics import agent_label_name
from exporter.lenses.metrics import FAMILY_NAMES as LENSES_FAMILIES
from exporter.lenses.metrics import ROUNDTRIP_UNITS, metadata_label_name
from exporter.sharding import Shard

DEFAULT_LISTEN_ADDRESS = ":9877"
DEFAULT_TELEMETRY_PATH = "/metrics"
# Paths the exporter serves itself, which the telemetry path may not take.
RESERVED_PATHS = ("/", "/healthz", "/readyz")

TIERS = ("development", "staging", "production")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error")  # warn: promslog's spelling of warning
LOG_FORMATS = ("json", "logfmt", "console")


class ConfigError(Exception):
    """A bad configuration: the message names the field and says why. The CLI exits 2 with it."""


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


@dataclass(frozen=True)
class LensesSettings:
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

    @property
    def deadline(self) -> float:
        """Seconds a whole request (connect, headers, body) may take; the stream's opening too."""
        return self.request_deadline if self.request_deadline is not None else DEADLINE_FACTOR * self.timeout


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
    max_body_bytes: int = 8 * 1024 * 1024  # one page of at most 100 agents
    # Optional HTTP(S) forward proxy for this target, e.g. http://proxy.corp:3128; out of the repr, since
    # it may carry a password.
    proxy_url: str = field(default="", repr=False)
    labels: tuple[str, ...] = ()
    """The agents' `metadata.labels` keys exported on `confluent_flink_agent_labels_info`."""
    selection: Selection = field(default_factory=Selection)
    """Which agents are exported, by `agent` (name) and `kafka_cluster_id`."""
    request_deadline: float | None = None  # None: DEADLINE_FACTOR times timeout

    @property
    def deadline(self) -> float:
        """Seconds one page request (connect, headers, body) may take."""
        return self.request_deadline if self.request_deadline is not None else DEADLINE_FACTOR * self.timeout


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


# --- small validators shared by the file and the environment loaders -------------------------------------

_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_UNITS = (365 * 86400.0, 7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
_SIZE = re.compile(r"^(\d+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_ID = re.compile(r"^[A-Za-z0-9._~-]+$")


def _show(value: Any) -> str:
    """A value for an error message: strings quoted, long ones cut."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer too long for str() (over 4300 digits)
        text = "a number of thousands of digits"
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def parse_duration(text: str) -> float | None:
    """A Prometheus-style duration (`30s`, `5m`, `1h30m`, `500ms`) in seconds; None when malformed."""
    match = _DURATION.match(text.strip())
    if not match or not text.strip():
        return None
    return sum(float(part) * unit for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if part)


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus-style duration (`1h30m`, `500ms`), for summaries."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts) or "0s"


def check_listen_address(address: str, where: str) -> str:
    """`HOST:PORT` (`:9877`, `127.0.0.1:0`, `[::1]:9877`); raises ConfigError naming `where`."""
    host, colon, port = address.rpartition(":")
    if (
        not colon
        or not (port.isascii() and port.isdigit())
        or int(port) > 65535
        or (":" in host and not host.startswith("["))
    ):
        raise ConfigError(f"{where}: expected HOST:PORT like :9877, got {_show(address)}")
    return address


def check_readable_file(path: Path, where: str) -> Path:
    """`path`, once it is known to be a regular file this process can open (checked without reading it or
    blocking on a FIFO); raises ConfigError naming `where` otherwise."""
    try:
        check_regular(path)
    except UnreadableFile as error:
        raise ConfigError(f"{where}: {error}") from None
    return path


def check_telemetry_path(path: str, where: str) -> str:
    """An absolute URL path for /metrics that the exporter's other endpoints do not use."""
    if not path.startswith("/") or any(character.isspace() or character in "?#" for character in path):
        raise ConfigError(f"{where}: expected a path starting with / like /metrics, got {_show(path)}")
    if path.rstrip("/") in ("", *RESERVED_PATHS):
        raise ConfigError(f"{where}: {path} is taken by the exporter's own endpoints")
    return path


def normal_log_level(level: str) -> str:
    """`warn` (promslog) and `warning` are the same level; the rest of the program knows `warning`."""
    return "warning" if level == "warn" else level


def check_url(value: str, where: str, *, allow_credentials: bool = False) -> str:
    """An http(s) URL with a host; returned without a trailing slash. Credentials in it are refused unless
    allowed (a proxy's), since the URL is shown in summaries and logs. An error message never shows what
    may be a secret (see `_url_in_message`)."""
    try:
        parts = urlsplit(value)
        scheme, host = parts.scheme, parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        userinfo = "@" in parts.netloc
    except ValueError:
        raise ConfigError(f"{where}: not an http(s) URL{_url_in_message(value, where)}") from None
    if userinfo and not allow_credentials:  # never echoed: it may hold a password
        raise ConfigError(f"{where}: credentials do not belong in the URL (use the token or *_file keys)")
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"{where}: not an http(s) URL{_url_in_message(value, where)}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: a base URL takes no query or fragment{_url_in_message(value, where)}")
    return value.rstrip("/")


def _url_in_message(url: str, where: str) -> str:
    """`: 'url'` for an error message, with user and password masked and the query and fragment left out
    (a token may be there); nothing at all for a value from the environment (a variable, or `${VAR}` in
    the file), which may be a secret set in the wrong place."""
    if isinstance(url, _Expanded) or where.isupper():
        return " (the value, from the environment, is not shown)"
    shown = _masked(re.sub(r"[?#].*", "", url, flags=re.DOTALL))
    return f": {_show(shown)}"


def _masked(url: str) -> str:
    """A URL for a message: whatever stands before an `@` in its authority (user and password) masked."""
    return re.sub(r"(//)[^/?#]*@", r"\1***@", url)


def url_host(url: str) -> str:
    """The host part of a URL (the default Lenses target name)."""
    return urlsplit(url).hostname or url


def file_path(value: str, where: str) -> Path:
    """A path as written, `~` expanded; raises ConfigError naming `where` when it cannot be one."""
    if "\0" in value:
        raise ConfigError(f"{where}: a path cannot contain a NUL character")
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of no such user
        raise ConfigError(f"{where}: cannot expand {_show(value)}: no such user") from None


def _read_secret_file(path: Path, where: str, origin: str) -> Secret:
    secret = Secret(file=path, origin=origin)
    try:
        value = secret.get()
    except SecretUnavailable as error:
        raise ConfigError(f"{where}: {error}") from None
    if not value.strip():
        raise ConfigError(f"{where}: {path} is empty")
    return secret


def _inline_secret(value: str, where: str, origin: str) -> Secret:
    if not value.strip():
        raise ConfigError(f"{where}: empty")
    _check_header_safe(value, where)
    return Secret(value=value, origin=origin)


def _check_header_safe(value: str, where: str) -> None:
    if not header_safe(value):
        raise ConfigError(
            f"{where}: holds characters a credential cannot have (non-ASCII, control characters or several "
            "lines)"
        )


# --- ${VAR} expansion ----------------------------------------------------------------------------------


class _Expanded(str):
    """A string that came (at least partly) from the environment: not an inline secret, and read leniently
    as a number or boolean (`sse: ${SSE}`)."""

    __slots__ = ()


_REFERENCE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def expand(text: str, environ: Mapping[str, str], where: str) -> str:
    """Replace `${VAR}` (and `${VAR:-default}`) with the environment's value; `$$` is a literal `$`.

    An undefined variable without a default is a ConfigError naming the field."""
    if "$" not in text:
        return text
    substituted = False

    def replace(match: re.Match[str]) -> str:
        nonlocal substituted
        if match.group(1):
            return "$"
        substituted = True
        name, default = match.group(2), match.group(3)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (referenced as ${{{name}}})")

    expanded = _REFERENCE.sub(replace, text)
    leftover = _REFERENCE.sub("", text)
    if "${" in leftover:
        raise ConfigError(
            f"{where}: malformed ${{...}} reference (expected ${{NAME}}, or $$ for a literal $)"
        )
    return _Expanded(expanded) if substituted else expanded


MAX_VALUES = 100_000
"""Far more values than any configuration has; a YAML alias bomb (aliases of aliases) stops here."""


def _expand_tree(node: Any, environ: Mapping[str, str], where: str, budget: list[int] | None = None) -> Any:
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"{where}: more than {MAX_VALUES} values in the file (YAML aliases of aliases?)")
    if isinstance(node, str):
        return expand(node, environ, where)
    if isinstance(node, list):
        return [_expand_tree(item, environ, f"{where}[{i}]", budget) for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {key: _expand_tree(value, environ, _join(where, key), budget) for key, value in node.items()}
    return node


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


# --- YAML ----------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or error.context or "malformed"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {str(error).splitlines()[0]}") from None
    except ValueError:  # PyYAML's int() of a literal longer than Python allows (4300 digits)
        raise ConfigError(f"{path}: invalid YAML: a number with thousands of digits") from None


# --- typed reading of one mapping ---------------------------------------------------------------------


class _Section:
    """One mapping of the file: typed getters whose errors name `where.key`; unknown keys are refused."""

    def __init__(self, data: Any, where: str, keys: tuple[str, ...], base: Path) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_type_name(data)}")
        for key in data:
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {_show(key)} is not a string")
            if key not in keys:
                hint = difflib.get_close_matches(key, keys, n=1)
                suffix = f" (did you mean {hint[0]}?)" if hint else f" (known keys: {', '.join(keys)})"
                raise ConfigError(f"{_join(where, key)}: unknown key{suffix}")
        self.data: dict[str, Any] = data
        self.where = where
        self.base = base

    def at(self, key: str) -> str:
        return _join(self.where, key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, default: str = "", *, secret: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            shown = "" if secret else f" {_show(value)}"
            hint = " (quote it)" if secret and isinstance(value, int | float) else ""
            raise ConfigError(f"{self.at(key)}: expected a string, got {_type_name(value)}{shown}{hint}")
        return value

    def required(self, key: str, hint: str = "") -> str:
        value = self.string(key)
        if not value.strip():
            raise ConfigError(f"{self.at(key)}: missing{hint}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, _Expanded) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)}: expected true or false, got {_show(value)}")
        return value

    def duration(self, key: str, default: float) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        seconds = parse_duration(value) if isinstance(value, str) else None
        if seconds is None:
            raise ConfigError(f"{self.at(key)}: expected a duration like 30s, got {_show(value)}")
        if seconds <= 0:
            raise ConfigError(f"{self.at(key)}: must be longer than 0s, got {_show(value)}")
        return seconds

    def integer(self, key: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, _Expanded) and value.strip().isascii() and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected a whole number, got {_show(value)}")
        return self._bounded(key, value, minimum, maximum)

    def size(self, key: str, default: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and (match := _SIZE.match(value.strip())):
            value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)}: expected a size in bytes like 8MiB, got {_show(value)}")
        return self._bounded(key, value, 1, None)

    def _bounded(self, key: str, value: int, minimum: int, maximum: int | None) -> int:
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{self.at(key)}: must be {bounds}, got {_show(value)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices and not (value == "" and default == ""):
            raise ConfigError(f"{self.at(key)}: expected one of {', '.join(choices)}, got {_show(value)}")
        return value

    def path(self, key: str) -> Path | None:
        value = self.string(key)
        if not value.strip():
            return None
        path = file_path(value, self.at(key))
        return path if path.is_absolute() else self.base / path

    def readable_path(self, key: str) -> Path | None:
        path = self.path(key)
        return check_readable_file(path, self.at(key)) if path is not None else None

    def section(self, key: str, keys: tuple[str, ...]) -> _Section:
        return _Section(self.data.get(key), self.at(key), keys, self.base)

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)}: expected a list, got {_type_name(value)}")
        return value

    def secret(self, key: str, env: str | None, environ: Mapping[str, str]) -> Secret | None:
        """`key` inline, `key_file`, or the environment variable `env`; None when none is set."""
        inline, file_key = self.data.get(key), f"{key}_file"
        if inline is not None and self.has(file_key):
            raise ConfigError(f"{self.at(key)}: set either {key} or {file_key}, not both")
        if inline is not None:
            text = self.string(key, secret=True)
            origin = "the environment (${...})" if isinstance(text, _Expanded) else "the config file"
            return _inline_secret(text, self.at(key), origin)
        path = self.path(file_key)
        if path is not None:
            return _read_secret_file(path, self.at(file_key), f"file {path}")
        return _env_secret(environ, env) if env else None

    def inline_secrets(self, keys: tuple[str, ...]) -> list[str]:
        """The fields among `keys` whose value is written in the file itself."""
        return [
            self.at(key)
            for key in keys
            if isinstance(self.data.get(key), str) and not isinstance(self.data[key], _Expanded)
        ]


# --- the file -------------------------------------------------------------------------------------------

TOP_KEYS = ("web", "lenses", "confluent", "log", "metrics")
METRICS_KEYS = ("allow", "deny")
LENSES_FILTER_FIELDS = ("environment", "tier")
CONFLUENT_FILTER_FIELDS = ("agent", "kafka_cluster_id")
WEB_KEYS = ("listen_address", "config_file", "telemetry_path")
LOG_KEYS = ("level", "format")
TLS_KEYS = ("ca_file", "insecure_skip_verify")
LENSES_KEYS = (
    "name",
    "url",
    "token",
    "token_file",
    "poll_interval",
    "sse",
    "kafka_connections",
    "metadata_labels",
    "roundtrip_duration_unit",
    "timeout",
    "tls",
    "sse_idle_timeout",
    "sse_max_event_bytes",
    "sse_unavailable_probe_interval",
    "max_body_bytes",
    "kafka_connections_concurrency",
    "include",
    "exclude",
    "request_deadline",
)
CONFLUENT_KEYS = ("targets", "concurrency")
TARGET_KEYS = (
    "name",
    "url",
    "organization_id",
    "environment_id",
    "api_key",
    "api_key_file",
    "api_secret",
    "api_secret_file",
    "token",
    "token_file",
    "tier",
    "poll_interval",
    "timeout",
    "tls",
    "page_size",
    "max_pages",
    "max_body_bytes",
    "proxy_url",
    "labels",
    "include",
    "exclude",
    "request_deadline",
)

NO_SOURCE = (
    "no source configured: set lenses.url or confluent.targets in the config file, "
    "or LENSES_HQ_URL / CONFLUENT_FLINK_URL in the environment"
)


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from a YAML file (with `${VAR}` expansion), or from the environment alone when `path` is
    None. Raises ConfigError with a one-line message naming the field."""
    environ = os.environ if environ is None else environ
    if path is None:
        return _from_environment(environ)
    try:
        content, status = read_regular(path, MAX_CONFIG_BYTES)
        text = content.decode("utf-8")
        mode = status.st_mode
    except UnreadableFile as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.reason}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    try:
        document = _parse_yaml(text, path)
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {_type_name(document)}")
        document = _expand_tree(document, environ, "")
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (or a YAML alias contains itself)") from None
    root = _Section(document, "", TOP_KEYS, path.parent)
    inline: list[str] = []
    web = _web(root.section("web", WEB_KEYS))
    log_section = root.section("log", LOG_KEYS)
    log_level = normal_log_level(log_section.choice("level", LOG_LEVELS, "info"))
    log_format = log_section.choice("format", LOG_FORMATS, "json")
    hqs: list[LensesSettings] = []
    if root.raw("lenses") is not None:
        hqs, inline_lenses = _lenses_targets(root, environ)
        inline += inline_lenses
    confluent, inline_confluent = _confluent(root.section("confluent", CONFLUENT_KEYS), environ)
    inline += inline_confluent
    if not hqs and not confluent.targets:
        raise ConfigError(NO_SOURCE)
    metrics = _metrics(root.section("metrics", METRICS_KEYS))
    warnings: list[ConfigWarning] = []
    if inline and mode & stat.S_IROTH:
        warnings.append(
            ConfigWarning(
                "config_secrets_world_readable",
                {
                    "path": str(path),
                    "fields": inline,
                    "hint": "chmod o-r the file, or use *_file or ${VAR} for secrets",
                },
            )
        )
    return Settings(
        web=web,
        lenses=hqs[0] if hqs else None,
        lenses_targets=tuple(hqs) if len(hqs) > 1 else (),
        confluent=confluent,
        metrics=metrics,
        log_level=log_level,
        log_format=log_format,
        source=str(path),
        warnings=tuple(warnings),
    )


def _web(section: _Section) -> WebSettings:
    where = section.at("listen_address")
    if isinstance(section.raw("listen_address"), list):
        addresses = section.items("listen_address")
        if not addresses:
            raise ConfigError(f"{where}: expected at least one HOST:PORT")
        for index, address in enumerate(addresses):
            if not isinstance(address, str):
                raise ConfigError(f"{where}[{index}]: expected a string, got {_type_name(address)}")
            check_listen_address(address, f"{where}[{index}]")
    else:
        addresses = [check_listen_address(section.string("listen_address", DEFAULT_LISTEN_ADDRESS), where)]
    path = section.string("telemetry_path", DEFAULT_TELEMETRY_PATH)
    return WebSettings(
        listen_address=addresses[0],
        additional_listen_addresses=tuple(addresses[1:]),
        config_file=section.readable_path("config_file"),
        telemetry_path=check_telemetry_path(path, section.at("telemetry_path")),
    )


def _tls(section: _Section) -> TLSSettings:
    return TLSSettings(
        ca_file=section.readable_path("ca_file"),
        insecure_skip_verify=section.boolean("insecure_skip_verify", False),
    )


def _lenses_targets(root: _Section, environ: Mapping[str, str]) -> tuple[list[LensesSettings], list[str]]:
    """`lenses.targets: [...]`, or the single form `lenses: {...}` as one target; names are unique."""
    raw = root.raw("lenses")
    if not (isinstance(raw, dict) and "targets" in raw):
        section = root.section("lenses", LENSES_KEYS)
        return [_lenses(section, environ)], section.inline_secrets(("token",))
    for key in raw:
        if key != "targets" and key in LENSES_KEYS:
            raise ConfigError(f"lenses.{key}: with lenses.targets, set it on each target instead")
    outer = root.section("lenses", ("targets",))
    items = outer.items("targets")
    if not items:
        raise ConfigError(f"{outer.at('targets')}: expected at least one target")
    hqs: list[LensesSettings] = []
    inline: list[str] = []
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        section = _Section(item, f"{outer.at('targets')}[{index}]", LENSES_KEYS, root.base)
        inline += section.inline_secrets(("token",))
        hq = _lenses(section, environ)
        if hq.name in names:
            raise ConfigError(
                f"{section.at('name')}: duplicate target name {_show(hq.name)} "
                f"(also lenses.targets[{names[hq.name]}]; give each HQ its own name)"
            )
        names[hq.name] = index
        hqs.append(hq)
    shared_labels(
        [hq.metadata_labels for hq in hqs], metadata_label_name, outer.at("targets"), "metadata_labels"
    )
    return hqs, inline


def shared_labels(
    lists: Sequence[Sequence[str]], label_name: Callable[[str], str], where: str = "", key: str = ""
) -> tuple[str, ...]:
    """The union of several targets' allowlists (the labels of their shared family), in order; two keys
    that become the same label name are refused."""
    keys: dict[str, str] = {}
    for index, allowlist in enumerate(lists):
        for position, name in enumerate(allowlist):
            label = label_name(name)
            other = keys.setdefault(label, name)
            if other != name:
                raise ConfigError(
                    f"{where}[{index}].{key}[{position}]: {_show(name)} and {_show(other)} (another target) "
                    f"both become the label {label}"
                )
    return tuple(keys.values())


def _pattern(section: _Section, key: str) -> re.Pattern[str] | None:
    value = section.raw(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{section.at(key)}: expected a regular expression, got {_type_name(value)}")
    try:
        return re.compile(value)
    except re.error as error:
        raise ConfigError(f"{section.at(key)}: bad regular expression {_show(value)}: {error}") from None


def _selection(section: _Section, fields: tuple[str, ...]) -> Selection:
    """`include` and `exclude`: regular expressions on `fields`, each matched against the whole value."""
    filters = []
    for key in ("include", "exclude"):
        part = section.section(key, fields)
        patterns = tuple((name, pattern) for name in fields if (pattern := _pattern(part, name)) is not None)
        filters.append(ObjectFilter(patterns))
    return Selection(*filters)


def _metrics(section: _Section) -> MetricsSettings:
    """`metrics.allow` / `metrics.deny`: names or globs of data families; one that names none is an error."""
    families = (*LENSES_FAMILIES, *CONFLUENT_FAMILIES)
    lists: list[tuple[str, ...]] = []
    for key in ("allow", "deny"):
        patterns: list[str] = []
        for index, pattern in enumerate(section.items(key)):
            where = f"{section.at(key)}[{index}]"
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigError(f"{where}: expected a family name or glob, got {_show(pattern)}")
            if not any(fnmatch.fnmatchcase(family, pattern) for family in families):
                hint = difflib.get_close_matches(pattern, families, n=1)
                suffix = f" (did you mean {hint[0]}?)" if hint else " (see docs/metrics.md for the families)"
                kind = "glob matches no family" if any(c in pattern for c in "*?[") else "unknown family"
                raise ConfigError(f"{where}: {kind} {_show(pattern)}{suffix}")
            patterns.append(pattern)
        lists.append(tuple(patterns))
    return MetricsSettings(*lists)


def _lenses(section: _Section, environ: Mapping[str, str]) -> LensesSettings:
    url = check_url(section.required("url"), section.at("url"))
    token = section.secret("token", "LENSES_HQ_TOKEN", environ)
    if token is None:
        raise ConfigError(
            f"{section.at('token')}: missing (set lenses.token, lenses.token_file or LENSES_HQ_TOKEN)"
        )
    name = section.string("name") or url_host(url)
    if not name.strip():
        raise ConfigError(f"{section.at('name')}: empty")
    timeout = section.duration("timeout", 10.0)
    return LensesSettings(
        name=name,
        url=url,
        token=token,
        poll_interval=section.duration("poll_interval", 30.0),
        sse=section.boolean("sse", True),
        kafka_connections=section.boolean("kafka_connections", False),
        metadata_labels=_metadata_labels(section),
        roundtrip_duration_unit=section.choice("roundtrip_duration_unit", tuple(ROUNDTRIP_UNITS), "ns"),
        timeout=timeout,
        request_deadline=_request_deadline(section, timeout),
        tls=_tls(section.section("tls", TLS_KEYS)),
        sse_idle_timeout=section.duration("sse_idle_timeout", 45.0),
        sse_max_event_bytes=section.size("sse_max_event_bytes", 8 * 1024 * 1024),
        sse_unavailable_probe_interval=section.duration("sse_unavailable_probe_interval", 600.0),
        max_body_bytes=section.size("max_body_bytes", 16 * 1024 * 1024),
        kafka_connections_concurrency=section.integer("kafka_connections_concurrency", 8, 1, 256),
        selection=_selection(section, LENSES_FILTER_FIELDS),
    )


def _metadata_labels(
    section: _Section,
    key_name: str = "metadata_labels",
    label_name: Callable[[str], str] = metadata_label_name,
) -> tuple[str, ...]:
    keys: list[str] = []
    seen: dict[str, tuple[int, str]] = {}
    for index, key in enumerate(section.items(key_name)):
        where = f"{section.at(key_name)}[{index}]"
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{where}: expected a metadata key (a non-empty string), got {_show(key)}")
        label = label_name(key)
        if label in seen:
            other_index, other = seen[label]
            raise ConfigError(
                f"{where}: {_show(key)} and {_show(other)} ({section.at(key_name)}[{other_index}]) "
                f"both become the label {label}"
            )
        seen[label] = (index, key)
        keys.append(key)
    return tuple(keys)


def _confluent(section: _Section, environ: Mapping[str, str]) -> tuple[ConfluentSettings, list[str]]:
    targets: list[ConfluentTarget] = []
    inline: list[str] = []
    names: dict[str, int] = {}
    for index, item in enumerate(section.items("targets")):
        target_section = _Section(item, f"{section.at('targets')}[{index}]", TARGET_KEYS, section.base)
        inline += target_section.inline_secrets(("api_key", "api_secret", "token"))
        target = _target(target_section, environ)
        if target.name in names:
            raise ConfigError(
                f"{target_section.at('name')}: duplicate target name {_show(target.name)} "
                f"(also confluent.targets[{names[target.name]}])"
            )
        names[target.name] = index
        targets.append(target)
    shared_labels([target.labels for target in targets], agent_label_name, section.at("targets"), "labels")
    return ConfluentSettings(tuple(targets), section.integer("concurrency", 8, 1, 256)), inline


def _identifier(section: _Section, key: str, example: str) -> str:
    value = section.required(key).strip()
    if not _ID.match(value):
        raise ConfigError(f"{section.at(key)}: expected an id like {example}, got {_show(value)}")
    return value


def _target(section: _Section, environ: Mapping[str, str]) -> ConfluentTarget:
    example = " (e.g. https://flink.us-east-1.aws.confluent.cloud)"
    url = check_url(section.required("url", example), section.at("url"))
    organization_id = _identifier(section, "organization_id", "7f5c1a2b-...")
    environment_id = _identifier(section, "environment_id", "env-abc123")
    api_key, api_secret, token = _credentials(section, environ)
    name = section.string("name") or environment_id
    if not name.strip():
        raise ConfigError(f"{section.at('name')}: empty")
    timeout = section.duration("timeout", 10.0)
    return ConfluentTarget(
        name=name,
        url=url,
        organization_id=organization_id,
        environment_id=environment_id,
        api_key=api_key,
        api_secret=api_secret,
        token=token,
        tier=section.choice("tier", TIERS, ""),
        poll_interval=section.duration("poll_interval", 60.0),
        timeout=timeout,
        request_deadline=_request_deadline(section, timeout),
        tls=_tls(section.section("tls", TLS_KEYS)),
        page_size=section.integer("page_size", 100, 1, 100),
        max_pages=section.integer("max_pages", 1000, 1),
        max_body_bytes=section.size("max_body_bytes", 8 * 1024 * 1024),
        proxy_url=_proxy_url(section),
        labels=_metadata_labels(section, "labels", agent_label_name),
        selection=_selection(section, CONFLUENT_FILTER_FIELDS),
    )


def _request_deadline(section: _Section, timeout: float) -> float:
    """The total deadline of one request: at least the per-read `timeout` it contains."""
    deadline = section.duration("request_deadline", DEADLINE_FACTOR * timeout)
    if deadline < timeout:
        raise ConfigError(
            f"{section.at('request_deadline')}: must be at least timeout ({timeout:g}s), got {deadline:g}s"
        )
    return deadline


def _proxy_url(section: _Section) -> str:
    proxy = section.string("proxy_url")
    return check_url(proxy, section.at("proxy_url"), allow_credentials=True) if proxy else ""


def _credentials(
    section: _Section, environ: Mapping[str, str]
) -> tuple[Secret | None, Secret | None, Secret | None]:
    """HTTP Basic (api_key + api_secret) or Bearer (token); from the target, else CONFLUENT_* variables."""
    api_key = section.secret("api_key", None, environ)
    api_secret = section.secret("api_secret", None, environ)
    token = section.secret("token", None, environ)
    if token is not None and (api_key is not None or api_secret is not None):
        raise ConfigError(f"{section.at('token')}: set either api_key/api_secret or token, not both")
    if api_key is not None and api_secret is None:
        raise ConfigError(f"{section.at('api_secret')}: missing (set api_secret or api_secret_file)")
    if api_secret is not None and api_key is None:
        raise ConfigError(f"{section.at('api_key')}: missing (set api_key or api_key_file)")
    if api_key is None and token is None:
        api_key, api_secret, token = _credentials_from_environment(environ)
    if api_key is None and token is None:
        raise ConfigError(
            f"{section.at('api_key')}: missing credentials (set api_key and api_secret, their *_file forms, "
            "token or token_file, or CONFLUENT_API_KEY and CONFLUENT_API_SECRET)"
        )
    return api_key, api_secret, token


def _env_secret(environ: Mapping[str, str], name: str) -> Secret | None:
    if environ.get(name, "").strip():
        _check_header_safe(environ[name], name)
        return Secret(value=environ[name], origin=f"env {name}")
    file_name = f"{name}_FILE"
    if environ.get(file_name, "").strip():
        path = file_path(environ[file_name].strip(), file_name)
        return _read_secret_file(path, file_name, f"file {path}")
    return None


def _credentials_from_environment(
    environ: Mapping[str, str],
) -> tuple[Secret | None, Secret | None, Secret | None]:
    api_key = _env_secret(environ, "CONFLUENT_API_KEY")
    api_secret = _env_secret(environ, "CONFLUENT_API_SECRET")
    if api_key is not None and api_secret is None:
        raise ConfigError("CONFLUENT_API_SECRET: missing (required with CONFLUENT_API_KEY)")
    if api_secret is not None and api_key is None:
        raise ConfigError("CONFLUENT_API_KEY: missing (required with CONFLUENT_API_SECRET)")
    if api_key is not None:
        return api_key, api_secret, None
    return None, None, _env_secret(environ, "CONFLUENT_TOKEN")


# --- the environment alone -----------------------------------------------------------------------------


def _from_environment(environ: Mapping[str, str]) -> Settings:
    lenses = None
    url = environ.get("LENSES_HQ_URL", "").strip()
    if url:
        url = check_url(url, "LENSES_HQ_URL")
        token = _env_secret(environ, "LENSES_HQ_TOKEN")
        if token is None:
            raise ConfigError(
                "LENSES_HQ_TOKEN: missing (required with LENSES_HQ_URL; or LENSES_HQ_TOKEN_FILE)"
            )
        lenses = LensesSettings(name=url_host(url), url=url, token=token)
    targets: list[ConfluentTarget] = []
    flink_url = environ.get("CONFLUENT_FLINK_URL", "").strip()
    if flink_url:
        flink_url = check_url(flink_url, "CONFLUENT_FLINK_URL")
        organization_id = environ.get("CONFLUENT_ORGANIZATION_ID", "").strip()
        if not organization_id:
            raise ConfigError("CONFLUENT_ORGANIZATION_ID: missing (required with CONFLUENT_FLINK_URL)")
        if not _ID.match(organization_id):
            raise ConfigError(f"CONFLUENT_ORGANIZATION_ID: expected a uuid, got {_show(organization_id)}")
        environment_ids = list(_split_ids(environ.get("CONFLUENT_ENVIRONMENT_IDS", "")))
        if not environment_ids:
            raise ConfigError(
                "CONFLUENT_ENVIRONMENT_IDS: missing (comma-separated, required with CONFLUENT_FLINK_URL)"
            )
        api_key, api_secret, token = _credentials_from_environment(environ)
        if api_key is None and token is None:
            raise ConfigError(
                "CONFLUENT_API_KEY: missing "
                "(set CONFLUENT_API_KEY and CONFLUENT_API_SECRET, or CONFLUENT_TOKEN)"
            )
        targets = [
            ConfluentTarget(
                name=environment_id,
                url=flink_url,
                organization_id=organization_id,
                environment_id=environment_id,
                api_key=api_key,
                api_secret=api_secret,
                token=token,
            )
            for environment_id in environment_ids
        ]
    if lenses is None and not targets:
        raise ConfigError(NO_SOURCE)
    return Settings(lenses=lenses, confluent=ConfluentSettings(tuple(targets)), source="environment")


def _split_ids(text: str) -> Iterator[str]:
    seen: set[str] = set()
    for part in text.split(","):
        environment_id = part.strip()
        if not environment_id:
            continue
        if not _ID.match(environment_id):
            raise ConfigError(
                f"CONFLUENT_ENVIRONMENT_IDS: expected ids like env-abc123, got {_show(environment_id)}"
            )
        if environment_id in seen:
            raise ConfigError(f"CONFLUENT_ENVIRONMENT_IDS: {environment_id} is listed twice")
        seen.add(environment_id)
        yield environment_id


def describe_secret(secret: Secret | None) -> str:
    """Where a secret comes from, never its value (for `check`)."""
    if secret is None:
        return "none"
    return secret.origin or (f"file {secret.file}" if secret.file else "the config file")
