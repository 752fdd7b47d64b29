"""The running exporter's listener under a web-config file: real TLS handshakes against certificates made
here, mTLS, basic auth, response headers, rate limit, certificate rotation, and request limits."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from structlog.testing import capture_logs

from exporter.config import Settings, WebSettings
from exporter.service import Exporter
from tests.support import find, parse_samples
from tests.web.tls_certificates import CertificateAuthority, Issued


class PKI:
    """A server CA with a certificate for 127.0.0.1, a client CA with a client, and a rogue CA's client."""

    def __init__(self, directory: Path) -> None:
        self.server_ca = CertificateAuthority(directory, "server")
        self.server = self.server_ca.issue("server", ip_addresses=("127.0.0.1",))
        self.client_ca = CertificateAuthority(directory, "clients")
        self.client = self.client_ca.issue("prometheus", dns_names=("prometheus.example",), client=True)
        self.other_client = self.client_ca.issue("stranger", dns_names=("stranger.example",), client=True)
        self.rogue_ca = CertificateAuthority(directory, "rogue")
        self.rogue_client = self.rogue_ca.issue("rogue", dns_names=("prometheus.example",), client=True)

    def tls(self, **extra: Any) -> dict[str, Any]:
        """A `tls_server_config` serving the server certificate."""
        return {"cert_file": str(self.server.cert_file), "key_file": str(self.server.key_file), **extra}

    def mtls(self, client_auth_type: str = "RequireAndVerifyClientCert", **extra: Any) -> dict[str, Any]:
        """A `tls_server_config` asking for client certificates issued by the client CA."""
        return self.tls(
            client_auth_type=client_auth_type, client_ca_file=str(self.client_ca.cert_file), **extra
        )

    def client_context(
        self,
        client: Issued | None = None,
        *,
        maximum_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """A client context trusting the server CA, presenting `client` if given."""
        context = ssl.create_default_context(cafile=str(self.server_ca.cert_file))
        if client is not None:
            context.load_cert_chain(client.cert_file, client.key_file)
        if maximum_version is not None:
            context.maximum_version = maximum_version
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@contextlib.asynccontextmanager
async def serving(directory: Path, web_config: dict[str, Any]) -> AsyncIterator[Exporter]:
    """The real exporter (no sources) listening on loopback with this web-config file."""
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(web_config))
    exporter = Exporter(Settings(web=WebSettings(listen_address="127.0.0.1:0", config_file=path)))
    await exporter.start()
    try:
        yield exporter
    finally:
        await exporter.stop()


def https(exporter: Exporter, path: str = "/metrics") -> str:
    return f"https://127.0.0.1:{exporter.port}{path}"


def http(exporter: Exporter, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{exporter.port}{path}"


async def get(url: str, context: ssl.SSLContext | None = None, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(verify=context or True, timeout=10) as client:
        return await client.get(url, **kwargs)


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# --- TLS ---------------------------------------------------------------------------------------------------


async def test_tls_serves_metrics_and_refuses_plain_http(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.tls()}) as exporter:
        response = await get(https(exporter), pki.client_context())
        assert response.status_code == 200
        assert find(parse_samples(response.text), "lenses_hq_exporter_build_info")
        with pytest.raises(httpx.TransportError):
            await get(http(exporter))


async def test_a_tls12_client_is_accepted_by_default(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.tls()}) as exporter:
        tls12 = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        assert (await get(https(exporter), tls12)).status_code == 200


async def test_min_version_tls13_refuses_a_tls12_only_client(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.tls(min_version="TLS13")}) as exporter:
        with pytest.raises(httpx.ConnectError):
            await get(https(exporter), pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
        assert (await get(https(exporter), pki.client_context())).status_code == 200


async def test_max_version_tls12_refuses_a_tls13_only_client(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.tls(max_version="TLS12")}) as exporter:
        tls13 = pki.client_context()
        tls13.minimum_version = ssl.TLSVersion.TLSv1_3
        with pytest.raises(httpx.ConnectError):
            await get(https(exporter), tls13)
        assert (await get(https(exporter), pki.client_context())).status_code == 200


async def test_cipher_suites_restrict_tls12(pki: PKI, tmp_path: Path) -> None:
    config = pki.tls(max_version="TLS12", cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    async with serving(tmp_path, {"tls_server_config": config}) as exporter:
        other = pki.client_context()
        other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        with pytest.raises(httpx.ConnectError):
            await get(https(exporter), other)
        same = pki.client_context()
        same.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
        assert (await get(https(exporter), same)).status_code == 200


async def test_curve_preferences_restrict_key_exchange(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.tls(curve_preferences=["CurveP384"])}) as exporter:
        p256_only = pki.client_context()
        p256_only.set_ecdh_curve("prime256v1")
        with pytest.raises(httpx.ConnectError):
            await get(https(exporter), p256_only)
        p384 = pki.client_context()
        p384.set_ecdh_curve("secp384r1")
        assert (await get(https(exporter), p384)).status_code == 200


# --- client certificates -----------------------------------------------------------------------------------


async def test_require_and_verify_client_cert(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.mtls()}) as exporter:
        with pytest.raises(httpx.TransportError):
            await get(https(exporter), pki.client_context())
        with pytest.raises(httpx.TransportError):
            await get(https(exporter), pki.client_context(pki.rogue_client))
        response = await get(https(exporter), pki.client_context(pki.client))
        assert response.status_code == 200
        assert find(parse_samples(response.text), "lenses_hq_exporter_build_info")


async def test_without_a_client_cert_a_tls12_handshake_is_refused(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.mtls()}) as exporter:
        with pytest.raises(httpx.ConnectError):
            await get(https(exporter), pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))


async def test_verify_client_cert_if_given(pki: PKI, tmp_path: Path) -> None:
    config = {"tls_server_config": pki.mtls("VerifyClientCertIfGiven")}
    async with serving(tmp_path, config) as exporter:
        assert (await get(https(exporter), pki.client_context())).status_code == 200
        assert (await get(https(exporter), pki.client_context(pki.client))).status_code == 200
        with pytest.raises(httpx.TransportError):
            await get(https(exporter), pki.client_context(pki.rogue_client))


async def test_require_any_client_cert_still_requires_one(pki: PKI, tmp_path: Path) -> None:
    config = {"tls_server_config": pki.mtls("RequireAnyClientCert")}
    async with serving(tmp_path, config) as exporter:
        with pytest.raises(httpx.TransportError):
            await get(https(exporter), pki.client_context())
        assert (await get(https(exporter), pki.client_context(pki.client))).status_code == 200


async def test_client_allowed_sans(pki: PKI, tmp_path: Path) -> None:
    config = {"tls_server_config": pki.mtls(client_allowed_sans=["prometheus.example"])}
    async with serving(tmp_path, config) as exporter:
        assert (await get(https(exporter), pki.client_context(pki.client))).status_code == 200
        refused = await get(https(exporter), pki.client_context(pki.other_client))
        assert refused.status_code == 403
        assert "lenses_hq_exporter" not in refused.text


# --- certificate rotation ----------------------------------------------------------------------------------


async def peer_certificate(exporter: Exporter, context: ssl.SSLContext) -> bytes:
    _, writer = await asyncio.open_connection("127.0.0.1", exporter.port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der: bytes = ssl_object.getpeercert(binary_form=True)
        return der
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_rotated_certificate_files_are_served_without_restart(pki: PKI, tmp_path: Path) -> None:
    served = pki.server_ca.issue("rotating", ip_addresses=("127.0.0.1",))
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(served.cert_file.read_bytes())
    key_file.write_bytes(served.key_file.read_bytes())
    config = {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}  # relative to web.yml
    async with serving(tmp_path, config) as exporter:
        assert await peer_certificate(exporter, pki.client_context()) == served.der

        renewed = pki.server_ca.issue("renewed", ip_addresses=("127.0.0.1",))
        for source, target in ((renewed.cert_file, cert_file), (renewed.key_file, key_file)):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            staged.replace(target)
        assert await peer_certificate(exporter, pki.client_context()) == renewed.der
        assert (await get(https(exporter), pki.client_context())).status_code == 200

        # A broken file keeps the last good certificate, and is reported once.
        with capture_logs() as logs:
            key_file.write_text("not a key")
            assert await peer_certificate(exporter, pki.client_context()) == renewed.der
            assert await peer_certificate(exporter, pki.client_context()) == renewed.der
        failures = [entry for entry in logs if entry["event"] == "web_tls_reload_failed"]
        assert len(failures) == 1
        assert "tls_server_config.key_file: not a PEM private key" in failures[0]["error"]


async def test_rotated_client_ca_is_used_without_restart(pki: PKI, tmp_path: Path) -> None:
    ca_file = tmp_path / "clients.pem"
    ca_file.write_bytes(pki.client_ca.cert_file.read_bytes())
    config = {
        "tls_server_config": pki.tls(
            client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(ca_file)
        )
    }
    async with serving(tmp_path, config) as exporter:
        assert (await get(https(exporter), pki.client_context(pki.client))).status_code == 200
        staged = tmp_path / "clients.new"
        staged.write_bytes(pki.rogue_ca.cert_file.read_bytes())
        staged.replace(ca_file)
        assert (await get(https(exporter), pki.client_context(pki.rogue_client))).status_code == 200
        with pytest.raises(httpx.TransportError):
            await get(https(exporter), pki.client_context(pki.client))


# --- basic auth --------------------------------------------------------------------------------------------


@pytest.fixture
def count_bcrypt(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many bcrypt checks ran since the fixture was set up."""
    calls: list[bytes] = []
    checkpw = bcrypt.checkpw

    def counting(password: bytes, hashed_password: bytes) -> bool:
        calls.append(hashed_password)
        return checkpw(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return lambda: len(calls)


BASIC_AUTH = {"basic_auth_users": {"prometheus": hashed("scrape-me"), "alice": hashed("wonderland")}}


async def test_basic_auth(tmp_path: Path) -> None:
    async with serving(tmp_path, BASIC_AUTH) as exporter:
        right = await get(http(exporter), auth=("prometheus", "scrape-me"))
        assert right.status_code == 200
        assert find(parse_samples(right.text), "lenses_hq_exporter_build_info")
        for auth in (("prometheus", "wrong"), ("alice", "scrape-me"), ("nobody", "scrape-me"), None):
            refused = await get(http(exporter), auth=auth)
            assert refused.status_code == 401, auth
            assert refused.headers["WWW-Authenticate"] == 'Basic realm="lenses-hq-exporter"'
            assert "lenses_hq_exporter" not in refused.text
        malformed = await get(http(exporter), headers={"Authorization": "Basic !!!not-base64"})
        assert malformed.status_code == 401


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/", "/missing"])
async def test_basic_auth_protects_every_endpoint(tmp_path: Path, path: str) -> None:
    async with serving(tmp_path, BASIC_AUTH) as exporter:
        assert (await get(http(exporter, path))).status_code == 401
        allowed = await get(http(exporter, path), auth=("alice", "wonderland"))
        assert allowed.status_code == (404 if path == "/missing" else 200)


async def test_basic_auth_caches_checks(tmp_path: Path, count_bcrypt: Callable[[], int]) -> None:
    async with serving(tmp_path, BASIC_AUTH) as exporter:
        for _ in range(5):
            assert (await get(http(exporter), auth=("prometheus", "scrape-me"))).status_code == 200
        assert count_bcrypt() == 1
        assert (await get(http(exporter), auth=("prometheus", "other"))).status_code == 401
        assert count_bcrypt() == 2


async def test_unknown_users_cost_a_bcrypt_check_too(tmp_path: Path, count_bcrypt: Callable[[], int]) -> None:
    async with serving(tmp_path, BASIC_AUTH) as exporter:
        assert (await get(http(exporter), auth=("mallory", "scrape-me"))).status_code == 401
        assert count_bcrypt() == 1


async def test_basic_auth_over_mtls(pki: PKI, tmp_path: Path) -> None:
    async with serving(tmp_path, {"tls_server_config": pki.mtls(), **BASIC_AUTH}) as exporter:
        context = pki.client_context(pki.client)
        assert (await get(https(exporter), context)).status_code == 401
        assert (await get(https(exporter), context, auth=("prometheus", "scrape-me"))).status_code == 200


async def test_htpasswd_2y_hashes_are_accepted(tmp_path: Path) -> None:
    hash_2y = "$2y$" + hashed("from-htpasswd")[4:]
    async with serving(tmp_path, {"basic_auth_users": {"ops": hash_2y}}) as exporter:
        assert (await get(http(exporter), auth=("ops", "from-htpasswd"))).status_code == 200
        assert (await get(http(exporter), auth=("ops", "nope"))).status_code == 401


# --- headers and rate limit --------------------------------------------------------------------------------

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "deny",
    "Content-Security-Policy": "default-src 'none'",
    "Strict-Transport-Security": "max-age=31536000",
}


async def test_configured_headers_are_on_every_response(tmp_path: Path) -> None:
    config = {"http_server_config": {"headers": HEADERS}, **BASIC_AUTH}
    async with serving(tmp_path, config) as exporter:
        responses = [
            await get(http(exporter), auth=("alice", "wonderland")),
            await get(http(exporter, "/missing"), auth=("alice", "wonderland")),
            await get(http(exporter)),
        ]
        assert [response.status_code for response in responses] == [200, 404, 401]
        for response in responses:
            for name, value in HEADERS.items():
                assert response.headers.get(name) == value, (response.status_code, name)


async def test_rate_limit(tmp_path: Path) -> None:
    async with serving(tmp_path, {"rate_limit": {"interval": "1h", "burst": 2}}) as exporter:
        statuses = [(await get(http(exporter, "/healthz"))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


# --- request limits and reflection ------------------------------------------------------------------------

MARKER = "zq7reflect<script>"


async def test_no_endpoint_reflects_request_input(tmp_path: Path) -> None:
    async with serving(tmp_path, {}) as exporter, httpx.AsyncClient(timeout=10) as client:
        for path in ("/metrics", "/", "/healthz", "/readyz", f"/{MARKER}"):
            response = await client.get(
                http(exporter, path),
                params={"name[]": MARKER, "collect[]": MARKER},
                headers={
                    "X-Probe": MARKER,
                    "User-Agent": MARKER,
                    "Referer": f"http://{MARKER}/",
                    "Cookie": f"session={MARKER}",
                    "Accept": f"text/plain, {MARKER}",
                    "X-Forwarded-For": MARKER,
                },
            )
            assert response.status_code in (200, 404)
            assert "zq7reflect" not in response.text, path
            assert "zq7reflect" not in str(response.headers), path


async def test_oversized_or_too_many_headers_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path, {}) as exporter, httpx.AsyncClient(timeout=10) as client:
        long_header = await client.get(http(exporter), headers={"X-Long": MARKER + "a" * 9000})
        assert long_header.status_code == 400
        # aiohttp's parser answers with its message, which quotes up to 100 bytes of the offending line:
        # plain text, never HTML.
        assert long_header.headers["Content-Type"].startswith("text/plain")
        many = {f"X-Header-{index}": "1" for index in range(80)}
        assert (await client.get(http(exporter), headers=many)).status_code == 400
        long_url = await client.get(http(exporter, "/metrics?" + "a" * 9000))
        assert long_url.status_code in (400, 414)
        assert (await client.get(http(exporter))).status_code == 200
