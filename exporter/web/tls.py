"""The listener's TLS: a server `SSLContext` built from the web-config file's `tls_server_config`, re-read
when a certificate, key or client CA file changes, and the client-certificate SAN allow-list."""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.config import ConfigError
from exporter.config.files import MAX_CONFIG_BYTES, FileStamp, UnreadableFile, file_stamp, read_regular

log = structlog.get_logger("exporter.web.tls")

WEB_CONFIG_FIELD = "web.config_file"

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# What each exporter-toolkit (Go crypto/tls) client auth policy becomes with OpenSSL, which cannot ask for a
# client certificate without verifying it against a CA:
# - RequestClientCert: Go asks for a certificate but neither requires nor verifies it, so it grants exactly
#   the access NoClientCert grants. We do not ask (CERT_NONE); the only visible difference is that no
#   CertificateRequest is sent.
# - RequireAnyClientCert (and its old name RequireClientCert): Go requires a certificate but accepts any.
#   We require one *and* verify it against client_ca_file (CERT_REQUIRED), which is stricter and therefore
#   needs client_ca_file.
# - VerifyClientCertIfGiven and RequireAndVerifyClientCert map exactly (CERT_OPTIONAL, CERT_REQUIRED). Go
#   falls back to the system roots when no client CA is given; we require client_ca_file instead, since
#   trusting every public CA to vouch for clients is almost never what an operator means.
VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
REQUIRES_CERTIFICATE = ("RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")

# The names Go's tls.CipherSuites() accepts, with their IANA code points. OpenSSL spells suites differently;
# the code point is how its names are found. TLS 1.3 suites are accepted and, as in Go, not configurable.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": 0x002F,
    "TLS_RSA_WITH_AES_256_CBC_SHA": 0x0035,
    "TLS_RSA_WITH_AES_128_GCM_SHA256": 0x009C,
    "TLS_RSA_WITH_AES_256_GCM_SHA384": 0x009D,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}


def web_config_error(field_path: str, message: str) -> ConfigError:
    """A `ConfigError` naming a field of the web-config file, e.g. `tls_server_config.cert_file`."""
    if not field_path:
        return ConfigError(f"{WEB_CONFIG_FIELD}: {message}")
    return ConfigError(f"{WEB_CONFIG_FIELD}: {field_path}: {message}")


@dataclass(frozen=True)
class TLSServerSettings:
    """The `tls_server_config` section, validated; relative paths already joined to the file's directory."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    def files(self) -> tuple[Path, ...]:
        """The files a handshake depends on (watched for changes)."""
        return tuple(path for path in (self.cert_file, self.key_file, self.client_ca_file) if path)


def _read(path: Path, field_path: str) -> bytes:
    try:
        return read_regular(path, MAX_CONFIG_BYTES)[0]
    except UnreadableFile as error:
        raise web_config_error(field_path, str(error)) from None


def _load_certificate(context: ssl.SSLContext, settings: TLSServerSettings) -> None:
    cert_field = "tls_server_config.cert_file" if settings.cert_file else "tls_server_config.cert"
    key_field = "tls_server_config.key_file" if settings.key_file else "tls_server_config.key"
    cert_pem = _read(settings.cert_file, cert_field) if settings.cert_file else (settings.cert or "").encode()
    key_pem = _read(settings.key_file, key_field) if settings.key_file else (settings.key or "").encode()
    try:
        # A throwaway store parses the certificates alone, so a bad certificate is told from a bad key.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=cert_pem.decode("ascii", "replace")
        )
    except (ssl.SSLError, ValueError):
        raise web_config_error(cert_field, "not a PEM certificate") from None
    if b"PRIVATE KEY-----" not in key_pem:
        raise web_config_error(key_field, "not a PEM private key")
    # load_cert_chain reads files only: inline PEM goes through a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="web-tls-") as scratch:
        cert_path, key_path = settings.cert_file, settings.key_file
        if cert_path is None:
            cert_path = Path(scratch, "cert.pem")
            cert_path.write_bytes(cert_pem)
        if key_path is None:
            key_path = Path(scratch, "key.pem")
            key_path.touch(mode=0o600)
            key_path.write_bytes(key_pem)
        try:
            # The password callback keeps OpenSSL from prompting on the terminal for an encrypted key.
            context.load_cert_chain(cert_path, key_path, password=lambda: b"")
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                raise web_config_error(key_field, f"does not match the certificate of {cert_field}") from None
            raise web_config_error(
                key_field, f"cannot load the private key (encrypted keys are not supported): {_reason(error)}"
            ) from None


def _load_client_ca(context: ssl.SSLContext, settings: TLSServerSettings) -> None:
    if settings.client_ca_file:
        ca_field = "tls_server_config.client_ca_file"
        ca_pem = _read(settings.client_ca_file, ca_field).decode("ascii", "replace")
    elif settings.client_ca:
        ca_field, ca_pem = "tls_server_config.client_ca", settings.client_ca
    else:
        return
    try:
        context.load_verify_locations(cadata=ca_pem)
    except (ssl.SSLError, ValueError):
        raise web_config_error(ca_field, "not a PEM certificate bundle") from None


def _reason(error: Exception) -> str:
    text = getattr(error, "reason", None) or str(error)
    return str(text).split(" (_ssl.c")[0]


def _openssl_cipher_names(names: Iterable[str]) -> list[str]:
    """The OpenSSL names of the given TLS 1.2-and-below suites (TLS 1.3 ones are skipped, as Go does)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.set_ciphers("ALL:@SECLEVEL=0")
    by_code = {cipher["id"] & 0xFFFF: cipher["name"] for cipher in probe.get_ciphers()}
    found = []
    for name in names:
        if name in TLS13_CIPHER_SUITES:
            continue
        openssl_name = by_code.get(CIPHER_SUITES[name])
        if openssl_name is None:
            raise web_config_error(
                "tls_server_config.cipher_suites", f"{name} is not available in this OpenSSL"
            )
        found.append(openssl_name)
    return found


def build_server_context(settings: TLSServerSettings) -> ssl.SSLContext:
    """A server-side `SSLContext` as the settings describe; `ConfigError` naming the field otherwise."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        with warnings.catch_warnings():
            # TLS10 and TLS11 are deprecated in Python too; exporter-toolkit accepts them, so do we (OpenSSL's
            # security level may still refuse such handshakes).
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = settings.min_version
            context.maximum_version = settings.max_version
    except ValueError as error:
        raise web_config_error("tls_server_config.min_version", f"not supported here: {error}") from None
    _load_certificate(context, settings)
    _load_client_ca(context, settings)
    context.verify_mode = VERIFY_MODES[settings.client_auth_type]
    tls12_ciphers = _openssl_cipher_names(settings.cipher_suites)
    if tls12_ciphers:
        try:
            context.set_ciphers(":".join(tls12_ciphers))
        except ssl.SSLError as error:
            raise web_config_error("tls_server_config.cipher_suites", _reason(error)) from None
    if not settings.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if settings.curve_preferences:
        # Python (before 3.15) sets a single key-exchange group: the first preference is used alone, which
        # never allows a curve the list does not name but may refuse a client that lacks it.
        context.set_ecdh_curve(CURVES[settings.curve_preferences[0]])
    return context


def _file_stamps(paths: Sequence[Path]) -> tuple[FileStamp | None, ...]:
    stamps: list[FileStamp | None] = []
    for path in paths:
        try:
            stamps.append(file_stamp(path))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


class ServerTLS:
    """The listener's `SSLContext`. Each handshake checks (by stat) whether a certificate, key or client CA
    file changed; if so it builds a fresh context from them and uses it from that handshake on, so a rotated
    certificate is served without a restart, as exporter-toolkit does. A file caught half-written keeps the
    last good context and logs once; the next change is tried again."""

    def __init__(self, settings: TLSServerSettings) -> None:
        self.settings = settings
        self._paths = settings.files()
        self._stamp = _file_stamps(self._paths)
        self.context = build_server_context(settings)
        self._current = self.context
        self.context.sni_callback = self._on_client_hello  # called for every ClientHello, SNI or not

    def _on_client_hello(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        stamp = _file_stamps(self._paths)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._current = build_server_context(self.settings)
                log.info("web_tls_reloaded", files=[str(path) for path in self._paths])
            except Exception as error:  # raised inside OpenSSL's callback it would only fail the handshake
                log.warning("web_tls_reload_failed", error=str(error))
        if self._current is not self.context:
            connection.context = self._current


def _normalise_san(value: str) -> str:
    value = value.strip()
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return value


def client_san_allowed(peercert: object, allowed: frozenset[str]) -> bool:
    """Whether a verified client certificate (as `getpeercert()` gives it) has an allowed SAN: DNS, IP,
    e-mail or URI, matched exactly as exporter-toolkit does (IP addresses compared in canonical form)."""
    if not isinstance(peercert, dict):
        return False
    for kind, value in peercert.get("subjectAltName", ()):
        if kind in ("DNS", "IP Address", "email", "URI") and _normalise_san(value) in allowed:
            return True
    return False


def client_san_middleware(allowed_sans: Sequence[str]) -> Middleware:
    """Refuse requests whose client certificate has none of `client_allowed_sans`.

    exporter-toolkit aborts the handshake; Python's ssl offers no hook there, so the check runs on every
    request of the connection instead (403, connection closed): no request is served either way."""
    allowed = frozenset(_normalise_san(value) for value in allowed_sans)

    @web.middleware
    async def check_client_san(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        if not client_san_allowed(peercert, allowed):
            response = web.Response(status=403, text="403: Forbidden\n")
            response.force_close()
            return response
        return await handler(request)

    return check_client_san
