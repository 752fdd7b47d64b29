"""Single values of the configuration, checked: durations, sizes, listen addresses, URLs, paths, secrets and
`${VAR}` expansion. Every check raises `ConfigError` with a message naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from exporter.config.files import UnreadableFile, check_regular
from exporter.config.secrets import Secret, SecretUnavailable, header_safe

# Paths the exporter serves itself, which the telemetry path may not take.
RESERVED_PATHS = ("/", "/healthz", "/readyz")


class ConfigError(Exception):
    """A bad configuration: the message names the field and says why. The CLI exits 2 with it."""


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
IDENTIFIER = re.compile(r"^[A-Za-z0-9._~-]+$")
"""What an organization or environment id may be made of."""


def show(value: Any) -> str:
    """A value for an error message: strings quoted, long ones cut."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except ValueError:  # an integer too long for str() (over 4300 digits)
        text = "a number of thousands of digits"
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value: Any) -> str:
    """What kind of YAML value this is, in words (`a list`, `a number`), for an error message."""
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


def parse_size(text: str) -> int | None:
    """A size in bytes (`8MiB`, `512 KB`, `1000`); None when malformed."""
    match = _SIZE.match(text.strip())
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)] if match else None


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


def split_listen_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` as its host and port: `:9877` → ("", 9877) (every interface), `127.0.0.1:0` →
    ("127.0.0.1", 0) (port 0 picks a free one), `[::1]:9877` → ("::1", 9877). Raises ValueError when the
    address is not one."""
    host, colon, port = address.rpartition(":")
    if (
        not colon
        or not (port.isascii() and port.isdigit())
        or int(port) > 65535
        or (":" in host and not host.startswith("["))
    ):
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.strip("[]"), int(port)


def check_listen_address(address: str, where: str) -> str:
    """`HOST:PORT` (`:9877`, `127.0.0.1:0`, `[::1]:9877`); raises ConfigError naming `where`."""
    try:
        split_listen_address(address)
    except ValueError:
        raise ConfigError(f"{where}: expected HOST:PORT like :9877, got {show(address)}") from None
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
        raise ConfigError(f"{where}: expected a path starting with / like /metrics, got {show(path)}")
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
    if isinstance(url, Expanded) or where.isupper():
        return " (the value, from the environment, is not shown)"
    shown = _masked(re.sub(r"[?#].*", "", url, flags=re.DOTALL))
    return f": {show(shown)}"


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
        raise ConfigError(f"{where}: cannot expand {show(value)}: no such user") from None


# --- secrets ---------------------------------------------------------------------------------------------


def file_secret(path: Path, where: str, origin: str) -> Secret:
    """A secret read from `path` (and re-read when it changes); raises ConfigError naming `where` when it
    cannot be read or is empty."""
    secret = Secret(file=path, origin=origin)
    try:
        value = secret.get()
    except SecretUnavailable as error:
        raise ConfigError(f"{where}: {error}") from None
    if not value.strip():
        raise ConfigError(f"{where}: {path} is empty")
    return secret


def inline_secret(value: str, where: str, origin: str) -> Secret:
    """A secret written as a value; it must be something an HTTP header can carry."""
    if not value.strip():
        raise ConfigError(f"{where}: empty")
    check_header_safe(value, where)
    return Secret(value=value, origin=origin)


def check_header_safe(value: str, where: str) -> None:
    """Raise ConfigError naming `where` (never the value) unless an HTTP header can carry `value`."""
    if not header_safe(value):
        raise ConfigError(
            f"{where}: holds characters a credential cannot have (non-ASCII, control characters or several "
            "lines)"
        )


def environment_secret(environ: Mapping[str, str], name: str) -> Secret | None:
    """The secret in the variable `name`, else in the file named by `name_FILE`; None when neither is set."""
    if environ.get(name, "").strip():
        check_header_safe(environ[name], name)
        return Secret(value=environ[name], origin=f"env {name}")
    file_name = f"{name}_FILE"
    if environ.get(file_name, "").strip():
        path = file_path(environ[file_name].strip(), file_name)
        return file_secret(path, file_name, f"file {path}")
    return None


def describe_secret(secret: Secret | None) -> str:
    """Where a secret comes from, never its value (for `check`)."""
    if secret is None:
        return "none"
    return secret.origin or (f"file {secret.file}" if secret.file else "the config file")


# --- ${VAR} expansion ------------------------------------------------------------------------------------


class Expanded(str):
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
    return Expanded(expanded) if substituted else expanded
