"""`lenses-hq-exporter healthcheck`: asks the running exporter's /healthz (or /readyz) on this host.

A container's health check runs beside the exporter, not with its arguments: `docker run IMAGE
--web.listen-address=:9100` tells the exporter alone where to listen. So the exporter writes the URL it
serves on to the file named by LENSES_HQ_EXPORTER_ADDRESS_FILE (the image sets it) once it listens, and the
health check reads it when it is not told an address itself.
"""

from __future__ import annotations

import base64
import contextlib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter.config import split_listen_address

ADDRESS_FILE_VARIABLE = "LENSES_HQ_EXPORTER_ADDRESS_FILE"


def local_url(listen_address: str, port: int, tls: bool) -> str:
    """The URL this host reaches a listen address at (`:9100` → http://127.0.0.1:9100)."""
    host, _ = split_listen_address(listen_address)
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def write_address_file(path: Path, url: str) -> None:
    """Write `url` whole (a reader never sees half of it)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(url + "\n", encoding="utf-8")
    partial.replace(path)


def remove_address_file(path: Path) -> None:
    """Forget the address: a stopped exporter is not healthy."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def read_address_file(path: Path) -> str | None:
    """The URL a running exporter wrote, or None when there is none."""
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return url or None


@dataclass(frozen=True)
class Outcome:
    """What one probe found: healthy or not, and a line saying why."""

    healthy: bool
    detail: str


def probe(url: str, *, credentials: tuple[str, str] | None = None, timeout: float = 4.0) -> Outcome:
    """GET `url`. Healthy on 200; a 401 without `credentials` counts too (the listener serves, and asks for
    the basic auth it was configured with). TLS is not verified: the peer is this host's own exporter."""
    request = urllib.request.Request(url)
    if credentials is not None:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Outcome(response.status == 200, f"{url} answered {response.status}")
    except urllib.error.HTTPError as error:
        if error.code == 401 and credentials is None:
            return Outcome(True, f"{url} answered 401 (basic auth is on)")
        return Outcome(False, f"{url} answered {error.code}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return Outcome(False, f"{url}: {reason}")


def address_file_from(environ: Mapping[str, str]) -> Path | None:
    """The address file named by the environment, if any."""
    value = environ.get(ADDRESS_FILE_VARIABLE, "").strip()
    return Path(value) if value else None
