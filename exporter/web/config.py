"""The listener's web-config file, in Prometheus exporter-toolkit's format: TLS, mTLS, basic auth, response
headers and a rate limit.

Parsed strictly, as exporter-toolkit does: a duplicate or unknown key, a wrong type, an unreadable
certificate, a bad bcrypt hash or an unknown TLS version is a `ConfigError` naming the field, e.g.
`web.config_file: tls_server_config.cert_file: cannot read /x.pem: No such file or directory`.
Relative paths are taken from the web-config file's directory. The file is read once at start; certificate,
key and client CA files are re-read when they change (see `exporter.web.tls.ServerTLS`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp.typedefs import Middleware

from exporter.config import ConfigError
from exporter.config.files import UnreadableFile
from exporter.config.reader import YAMLProblem, join, parse_yaml, read_text
from exporter.web.auth import BasicAuth, RateLimit
from exporter.web.tls import (
    CIPHER_SUITES,
    CURVES,
    REQUIRES_CERTIFICATE,
    TLS_VERSIONS,
    VERIFY_MODES,
    WEB_CONFIG_FIELD,
    ServerTLS,
    TLSServerSettings,
    client_san_middleware,
    web_config_error,
)

log = structlog.get_logger("exporter.web.config")

TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
TLS_KEYS = (
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_ca_file",
    "client_ca",
    "client_auth_type",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
HTTP_KEYS = ("http2", "headers")
RATE_LIMIT_KEYS = ("interval", "burst")

# The headers exporter-toolkit lets an operator set, with the values it accepts where it restricts them.
HEADER_VALUES: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass
class WebConfig:
    """What the web-config file asks of the listener."""

    ssl_context: ssl.SSLContext | None = None
    middlewares: list[Middleware] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebConfigFile:
    """The web-config file, validated."""

    tls: TLSServerSettings | None = None
    http2: bool = True  # accepted for compatibility; aiohttp serves HTTP/1.1 only
    headers: Mapping[str, str] = field(default_factory=dict)
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    rate_limit_interval: float = 0.0
    rate_limit_burst: int = 0


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _mapping(value: object, where: str, known: tuple[str, ...] | None = None) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise web_config_error(where, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise web_config_error(where, f"key {key!r} is not a string (quote it)")
        if known is not None and key not in known:
            raise web_config_error(join(where, key), f"unknown key (expected one of: {', '.join(known)})")
    return value


def _string(section: dict[str, object], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise web_config_error(join(where, key), f"expected a string, got {_kind(value)}")
    return value


def _boolean(section: dict[str, object], key: str, where: str, default: bool) -> bool:
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise web_config_error(join(where, key), f"expected true or false, got {_kind(value)}")
    return value


def _strings(section: dict[str, object], key: str, where: str) -> tuple[str, ...] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise web_config_error(join(where, key), f"expected a list of strings, got {_kind(value)}")
    return tuple(value)


def _choices(values: tuple[str, ...] | None, known: Mapping[str, object], where: str) -> tuple[str, ...]:
    for value in values or ():
        if value not in known:
            raise web_config_error(where, f"unknown value {value!r} (expected one of: {', '.join(known)})")
    return values or ()


def _path(section: dict[str, object], key: str, where: str, directory: Path) -> Path | None:
    value = _string(section, key, where)
    return directory / value if value is not None else None


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration (`1s`, `500ms`, `1m30s`, `0`); None when it is not one."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    while position < len(text):
        match = GO_DURATION_PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if text else None


def _parse_tls(value: object, directory: Path) -> TLSServerSettings | None:
    where = "tls_server_config"
    section = _mapping(value, where, TLS_KEYS)
    cert_file = _path(section, "cert_file", where, directory)
    key_file = _path(section, "key_file", where, directory)
    cert = _string(section, "cert", where)
    key = _string(section, "key", where)
    client_ca_file = _path(section, "client_ca_file", where, directory)
    client_ca = _string(section, "client_ca", where)
    client_auth_type = _string(section, "client_auth_type", where)
    # As exporter-toolkit: TLS is on as soon as any of these is set, and then needs a certificate and key.
    if not any((cert_file, key_file, cert, key, client_ca_file, client_ca, client_auth_type)):
        return None
    for file_key, inline_key, file_value, inline_value in (
        ("cert_file", "cert", cert_file, cert),
        ("key_file", "key", key_file, key),
        ("client_ca_file", "client_ca", client_ca_file, client_ca),
    ):
        if file_value and inline_value:
            raise web_config_error(f"{where}.{inline_key}", f"give {inline_key} or {file_key}, not both")
    if not (cert_file or cert):
        raise web_config_error(f"{where}.cert_file", "required when TLS is configured (or cert)")
    if not (key_file or key):
        raise web_config_error(f"{where}.key_file", "required when TLS is configured (or key)")

    auth_type = client_auth_type or TLSServerSettings.client_auth_type
    if auth_type not in VERIFY_MODES:
        raise web_config_error(
            f"{where}.client_auth_type",
            f"unknown value {auth_type!r} (expected one of: {', '.join(VERIFY_MODES)})",
        )
    has_ca = bool(client_ca_file or client_ca)
    if has_ca and auth_type == "NoClientCert":
        raise web_config_error(f"{where}.client_auth_type", "client_ca_file is set but no client auth policy")
    if VERIFY_MODES[auth_type] != ssl.CERT_NONE and not has_ca:
        raise web_config_error(
            f"{where}.client_ca_file",
            f"required with client_auth_type {auth_type} (client certificates are verified against it)",
        )
    allowed_sans = _strings(section, "client_allowed_sans", where)
    if allowed_sans is not None and auth_type not in REQUIRES_CERTIFICATE:
        raise web_config_error(
            f"{where}.client_allowed_sans",
            "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        )

    versions: dict[str, ssl.TLSVersion] = {}
    for version_key in ("min_version", "max_version"):
        name = _string(section, version_key, where)
        if name is not None and name not in TLS_VERSIONS:
            raise web_config_error(
                f"{where}.{version_key}",
                f"unknown TLS version {name!r} (expected one of: {', '.join(TLS_VERSIONS)})",
            )
        default: ssl.TLSVersion = getattr(TLSServerSettings, version_key)
        versions[version_key] = TLS_VERSIONS[name] if name is not None else default
    if versions["min_version"] > versions["max_version"]:
        raise web_config_error(f"{where}.min_version", "is above max_version")

    return TLSServerSettings(
        cert_file=cert_file,
        key_file=key_file,
        cert=cert,
        key=key,
        client_ca_file=client_ca_file,
        client_ca=client_ca,
        client_auth_type=auth_type,
        client_allowed_sans=allowed_sans,
        min_version=versions["min_version"],
        max_version=versions["max_version"],
        cipher_suites=_choices(
            _strings(section, "cipher_suites", where), CIPHER_SUITES, f"{where}.cipher_suites"
        ),
        prefer_server_cipher_suites=_boolean(
            section, "prefer_server_cipher_suites", where, TLSServerSettings.prefer_server_cipher_suites
        ),
        curve_preferences=_choices(
            _strings(section, "curve_preferences", where), CURVES, f"{where}.curve_preferences"
        ),
    )


def _parse_headers(value: object) -> dict[str, str]:
    where = "http_server_config.headers"
    headers: dict[str, str] = {}
    for name, header_value in _mapping(value, where).items():
        if name not in HEADER_VALUES:
            raise web_config_error(
                f"{where}.{name}", f"this header cannot be set (expected one of: {', '.join(HEADER_VALUES)})"
            )
        if not isinstance(header_value, str):
            raise web_config_error(f"{where}.{name}", f"expected a string, got {_kind(header_value)}")
        allowed = HEADER_VALUES[name]
        if allowed and header_value not in allowed:
            raise web_config_error(f"{where}.{name}", f"expected one of: {', '.join(allowed)}")
        if any(ord(character) < 0x20 or ord(character) == 0x7F for character in header_value):
            raise web_config_error(f"{where}.{name}", "contains a control character")
        if header_value:
            headers[name] = header_value
    return headers


def _parse_users(value: object) -> dict[str, bytes]:
    where = "basic_auth_users"
    users: dict[str, bytes] = {}
    for user, hashed in _mapping(value, where).items():
        if ":" in user or not user:
            raise web_config_error(f"{where}.{user}", "a user name cannot be empty or contain ':'")
        match = BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if not isinstance(hashed, str) or match is None or not 4 <= int(match.group(1)) <= 31:
            # The hash is not shown: it is the next best thing to the password.
            raise web_config_error(
                f"{where}.{user}", "not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters)"
            )
        users[user] = hashed.encode()
    return users


def parse_web_config(document: object, directory: Path) -> WebConfigFile:
    """Validate a loaded web-config document; relative paths are joined to `directory`."""
    top = _mapping(document, "", TOP_KEYS)
    http = _mapping(top.get("http_server_config"), "http_server_config", HTTP_KEYS)
    rate = _mapping(top.get("rate_limit"), "rate_limit", RATE_LIMIT_KEYS)
    interval_value = rate.get("interval", WebConfigFile.rate_limit_interval)
    interval = 0.0 if interval_value == 0 else None
    if isinstance(interval_value, str):
        interval = parse_go_duration(interval_value)
    if interval is None or isinstance(interval_value, bool):
        raise web_config_error("rate_limit.interval", f"expected a duration like 1s, got {interval_value!r}")
    burst = rate.get("burst", WebConfigFile.rate_limit_burst)
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise web_config_error("rate_limit.burst", f"expected a whole number, got {_kind(burst)}")
    if interval > 0 and burst < 1:
        raise web_config_error("rate_limit.burst", "must be at least 1 when rate_limit.interval is set")
    return WebConfigFile(
        tls=_parse_tls(top.get("tls_server_config"), directory),
        http2=_boolean(http, "http2", "http_server_config", WebConfigFile.http2),
        headers=_parse_headers(http.get("headers")),
        basic_auth_users=_parse_users(top.get("basic_auth_users")),
        rate_limit_interval=interval,
        rate_limit_burst=burst,
    )


def _read_document(path: Path) -> object:
    """The file's document, read and loaded as the main configuration file is (duplicate keys refused)."""
    try:
        text, _ = read_text(path)
    except UnreadableFile as error:
        raise ConfigError(f"{WEB_CONFIG_FIELD}: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{WEB_CONFIG_FIELD}: {path} is not UTF-8 text") from None
    try:
        return parse_yaml(text)
    except YAMLProblem as error:
        raise ConfigError(
            f"{WEB_CONFIG_FIELD}: {path} is not valid YAML: {error.problem}{error.location}"
        ) from None


def load_web_config(path: Path | None) -> WebConfig:
    """Read and validate the web-config file; no file means plain HTTP without auth."""
    if path is None:
        return WebConfig()
    settings = parse_web_config(_read_document(path), path.parent)
    middlewares: list[Middleware] = []
    # Outermost first. Configured headers are added as each response is prepared (401 and 429 included,
    # and streamed /metrics bodies, whose headers leave before the handler returns).
    if settings.rate_limit_interval > 0:
        middlewares.append(RateLimit(settings.rate_limit_interval, settings.rate_limit_burst).middleware())
    tls = ServerTLS(settings.tls) if settings.tls is not None else None
    if settings.tls is not None and settings.tls.client_allowed_sans is not None:
        middlewares.append(client_san_middleware(settings.tls.client_allowed_sans))
    if settings.basic_auth_users:
        middlewares.append(BasicAuth(settings.basic_auth_users).middleware())
    log.info(
        "web_config_loaded",
        file=str(path),
        tls=tls is not None,
        client_auth_type=settings.tls.client_auth_type if settings.tls else None,
        basic_auth_users=len(settings.basic_auth_users),
        rate_limit=settings.rate_limit_interval > 0,
    )
    return WebConfig(
        ssl_context=tls.context if tls is not None else None,
        middlewares=middlewares,
        response_headers=dict(settings.headers),
    )
