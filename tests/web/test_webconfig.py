"""The web-config file (exporter-toolkit format): strict validation with messages naming the field, and the
server SSLContext it builds."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exporter.config import ConfigError
from exporter.web.config import load_web_config, parse_go_duration
from tests.web.tls_certificates import CertificateAuthority, Issued

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()


class Files:
    """A CA, a server certificate and its key, and a few broken files, in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = CertificateAuthority(directory, "test")
        self.server: Issued = self.ca.issue("server", ip_addresses=("127.0.0.1",))
        self.other_key = directory / "other.key"
        self.other_key.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.encrypted_key = directory / "encrypted.key"
        self.encrypted_key.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            )
        )
        self.garbage = directory / "garbage.pem"
        self.garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
        self.text = directory / "notes.txt"
        self.text.write_text("hello\n")

    def tls(self, **extra: Any) -> dict[str, Any]:
        return {"cert_file": str(self.server.cert_file), "key_file": str(self.server.key_file), **extra}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("webconfig"))


def write(directory: Path, document: Any) -> Path:
    path = directory / "web.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def load(directory: Path, document: Any) -> Any:
    return load_web_config(write(directory, document))


# --- accepted files ----------------------------------------------------------------------------------------


def test_no_file_means_plain_http_without_auth() -> None:
    config = load_web_config(None)
    assert config.ssl_context is None
    assert config.middlewares == []


@pytest.mark.parametrize("document", ["", "{}\n", "tls_server_config: {}\nbasic_auth_users: {}\n"])
def test_an_empty_file_changes_nothing(tmp_path: Path, document: str) -> None:
    config = load(tmp_path, document)
    assert config.ssl_context is None
    assert config.middlewares == []


def test_tls_defaults_follow_exporter_toolkit(files: Files, tmp_path: Path) -> None:
    context = load(tmp_path, {"tls_server_config": files.tls()}).ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_NONE
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


@pytest.mark.parametrize(
    ("client_auth_type", "verify_mode"),
    [
        ("NoClientCert", ssl.CERT_NONE),
        ("RequestClientCert", ssl.CERT_NONE),
        ("RequireAnyClientCert", ssl.CERT_REQUIRED),
        ("RequireClientCert", ssl.CERT_REQUIRED),
        ("VerifyClientCertIfGiven", ssl.CERT_OPTIONAL),
        ("RequireAndVerifyClientCert", ssl.CERT_REQUIRED),
    ],
)
def test_client_auth_types(files: Files, tmp_path: Path, client_auth_type: str, verify_mode: int) -> None:
    tls = files.tls(client_auth_type=client_auth_type)
    if client_auth_type != "NoClientCert":
        tls["client_ca_file"] = str(files.ca.cert_file)
    context = load(tmp_path, {"tls_server_config": tls}).ssl_context
    assert context is not None
    assert context.verify_mode == verify_mode
    if client_auth_type != "NoClientCert":
        assert context.cert_store_stats()["x509_ca"] == 1


def test_versions_ciphers_and_preference(files: Files, tmp_path: Path) -> None:
    tls = files.tls(
        min_version="TLS13",
        max_version="TLS13",
        prefer_server_cipher_suites=False,
        cipher_suites=["TLS_AES_128_GCM_SHA256"],
        curve_preferences=["CurveP384", "X25519"],
    )
    context = load(tmp_path, {"tls_server_config": tls}).ssl_context
    assert context is not None
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_3
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_tls12_cipher_suites_are_translated_to_openssl_names(files: Files, tmp_path: Path) -> None:
    tls = files.tls(cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"])
    context = load(tmp_path, {"tls_server_config": tls}).ssl_context
    assert context is not None
    tls12 = {cipher["name"] for cipher in context.get_ciphers() if cipher["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES128-GCM-SHA256"}


def test_relative_paths_are_taken_from_the_web_config_directory(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for issued in (files.server.cert_file, files.server.key_file, files.ca.cert_file):
        (tmp_path / issued.name).write_bytes(issued.read_bytes())
    monkeypatch.chdir("/")
    tls = {
        "cert_file": files.server.cert_file.name,
        "key_file": files.server.key_file.name,
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": files.ca.cert_file.name,
    }
    assert load(tmp_path, {"tls_server_config": tls}).ssl_context is not None


def test_inline_certificate_key_and_client_ca(files: Files, tmp_path: Path) -> None:
    tls = {
        "cert": files.server.cert_file.read_text(),
        "key": files.server.key_file.read_text(),
        "client_ca": files.ca.cert_file.read_text(),
        "client_auth_type": "RequireAndVerifyClientCert",
    }
    context = load(tmp_path, {"tls_server_config": tls}).ssl_context
    assert context is not None
    assert context.cert_store_stats()["x509_ca"] == 1


def test_everything_at_once_gives_one_guard_each(files: Files, tmp_path: Path) -> None:
    document = {
        "tls_server_config": files.tls(
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(files.ca.cert_file),
            client_allowed_sans=["prometheus.example"],
        ),
        "http_server_config": {"http2": False, "headers": {"X-Frame-Options": "deny"}},
        "basic_auth_users": {"prometheus": HASH},
        "rate_limit": {"interval": "100ms", "burst": 10},
    }
    config = load(tmp_path, document)
    assert config.ssl_context is not None
    assert len(config.middlewares) == 3  # rate limit, client SANs, basic auth
    assert config.response_headers == {"X-Frame-Options": "deny"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0), ("250us", 0.00025)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "soon", "1d", "s", "-1s", "1s ago"])
def test_not_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


# --- refused files -----------------------------------------------------------------------------------------


def test_the_brief_message_for_a_missing_certificate(files: Files, tmp_path: Path) -> None:
    missing = tmp_path / "x.pem"
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            {"tls_server_config": {"cert_file": str(missing), "key_file": str(files.server.key_file)}},
        )
    assert str(caught.value) == (
        f"web.config_file: tls_server_config.cert_file: cannot read {missing}: No such file or directory"
    )


def test_a_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^web\.config_file: cannot read .*web\.yml: No such file"):
        load_web_config(tmp_path / "web.yml")


def test_a_duplicate_key_in_a_web_config_file_is_refused_naming_it(tmp_path: Path) -> None:
    text = "basic_auth_users:\n  alice: x\nbasic_auth_users:\n  bob: y\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert message.startswith("web.config_file: "), message
    assert "duplicate key 'basic_auth_users'" in message
    assert "line 3" in message


def broken(files: Files) -> list[tuple[Any, str]]:
    """(document, the start of the message after `web.config_file: `)."""
    ca = str(files.ca.cert_file)
    return [
        ("tls_server_config: [\n", "is not valid YAML"),
        ("- a\n- b\n", "expected a mapping, got a list"),
        ({"tls_config": {}}, "tls_config: unknown key (expected one of: tls_server_config, "),
        ({"tls_server_config": {"certfile": "x"}}, "tls_server_config.certfile: unknown key"),
        ({"tls_server_config": "on"}, "tls_server_config: expected a mapping, got a string"),
        (
            {"tls_server_config": files.tls(key_file="/nonexistent.key")},
            "tls_server_config.key_file: cannot read",
        ),
        (
            {"tls_server_config": files.tls(cert_file=str(files.text))},
            "tls_server_config.cert_file: not a PEM",
        ),
        (
            {"tls_server_config": files.tls(cert_file=str(files.garbage))},
            "tls_server_config.cert_file: not a PEM",
        ),
        ({"tls_server_config": files.tls(key_file=str(files.text))}, "tls_server_config.key_file: not a PEM"),
        (
            {"tls_server_config": files.tls(key_file=str(files.other_key))},
            "tls_server_config.key_file: does not match",
        ),
        (
            {"tls_server_config": files.tls(key_file=str(files.encrypted_key))},
            "tls_server_config.key_file: cannot load the private key",
        ),
        (
            {"tls_server_config": {"cert_file": str(files.server.cert_file)}},
            "tls_server_config.key_file: required",
        ),
        (
            {"tls_server_config": {"client_auth_type": "NoClientCert"}},
            "tls_server_config.cert_file: required",
        ),
        (
            {"tls_server_config": files.tls(cert=files.server.cert_file.read_text())},
            "tls_server_config.cert: give cert or cert_file, not both",
        ),
        (
            {"tls_server_config": files.tls(cert_file=42)},
            "tls_server_config.cert_file: expected a string, got int",
        ),
        (
            {"tls_server_config": files.tls(client_auth_type="Always")},
            "tls_server_config.client_auth_type: unknown value 'Always'",
        ),
        (
            {"tls_server_config": files.tls(client_ca_file=ca)},
            "tls_server_config.client_auth_type: client_ca_file is set but no client auth policy",
        ),
        (
            {"tls_server_config": files.tls(client_auth_type="RequireAndVerifyClientCert")},
            "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
        ),
        (
            {"tls_server_config": files.tls(client_auth_type="RequireAnyClientCert")},
            "tls_server_config.client_ca_file: required with client_auth_type RequireAnyClientCert",
        ),
        (
            {
                "tls_server_config": files.tls(
                    client_auth_type="VerifyClientCertIfGiven", client_ca_file="/nonexistent-ca.pem"
                )
            },
            "tls_server_config.client_ca_file: cannot read /nonexistent-ca.pem: No such file or directory",
        ),
        (
            {
                "tls_server_config": files.tls(
                    client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(files.text)
                )
            },
            "tls_server_config.client_ca_file: not a PEM certificate bundle",
        ),
        (
            {
                "tls_server_config": files.tls(
                    client_auth_type="VerifyClientCertIfGiven", client_ca_file=ca, client_allowed_sans=["a"]
                )
            },
            "tls_server_config.client_allowed_sans: requires client_auth_type RequireAnyClientCert or",
        ),
        (
            {"tls_server_config": files.tls(min_version="TLS14")},
            "tls_server_config.min_version: unknown TLS version",
        ),
        (
            {"tls_server_config": files.tls(min_version="TLS1.2")},
            "tls_server_config.min_version: unknown TLS version",
        ),
        (
            {"tls_server_config": files.tls(min_version=1.2)},
            "tls_server_config.min_version: expected a string",
        ),
        (
            {"tls_server_config": files.tls(max_version="SSL3")},
            "tls_server_config.max_version: unknown TLS version",
        ),
        (
            {"tls_server_config": files.tls(min_version="TLS13", max_version="TLS12")},
            "tls_server_config.min_version: is above max_version",
        ),
        (
            {"tls_server_config": files.tls(cipher_suites=["TLS_RSA_WITH_RC4_128_SHA"])},
            "tls_server_config.cipher_suites: unknown value 'TLS_RSA_WITH_RC4_128_SHA'",
        ),
        (
            {"tls_server_config": files.tls(cipher_suites="TLS_AES_128_GCM_SHA256")},
            "tls_server_config.cipher_suites: expected a list of strings",
        ),
        (
            {"tls_server_config": files.tls(curve_preferences=["CurveP192"])},
            "tls_server_config.curve_preferences: unknown value 'CurveP192'",
        ),
        (
            {"tls_server_config": files.tls(prefer_server_cipher_suites="yes")},
            "tls_server_config.prefer_server_cipher_suites: expected true or false, got a string",
        ),
        ({"http_server_config": {"http2": "on"}}, "http_server_config.http2: expected true or false"),
        ({"http_server_config": {"gzip": True}}, "http_server_config.gzip: unknown key"),
        (
            {"http_server_config": {"headers": {"X-Powered-By": "me"}}},
            "http_server_config.headers.X-Powered-By: this header cannot be set",
        ),
        (
            {"http_server_config": {"headers": {"X-Frame-Options": "allow"}}},
            "http_server_config.headers.X-Frame-Options: expected one of: deny, sameorigin",
        ),
        (
            {"http_server_config": {"headers": {"Content-Security-Policy": "a\r\nSet-Cookie: x"}}},
            "http_server_config.headers.Content-Security-Policy: contains a control character",
        ),
        ({"basic_auth_users": ["alice"]}, "basic_auth_users: expected a mapping, got a list"),
        ("basic_auth_users:\n  yes: " + HASH + "\n", "basic_auth_users: key True is not a string (quote it)"),
        ({"basic_auth_users": {"alice": "plaintext"}}, "basic_auth_users.alice: not a bcrypt hash"),
        ({"basic_auth_users": {"alice": "$2b$03" + HASH[6:]}}, "basic_auth_users.alice: not a bcrypt hash"),
        ({"basic_auth_users": {"alice": HASH[:-1]}}, "basic_auth_users.alice: not a bcrypt hash"),
        ({"basic_auth_users": {"alice": 12}}, "basic_auth_users.alice: not a bcrypt hash"),
        (
            {"basic_auth_users": {"a:b": HASH}},
            "basic_auth_users.a:b: a user name cannot be empty or contain ':'",
        ),
        (
            {"rate_limit": {"interval": "soon", "burst": 1}},
            "rate_limit.interval: expected a duration like 1s",
        ),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit.burst: must be at least 1"),
        ({"rate_limit": {"interval": "1s", "burst": "lots"}}, "rate_limit.burst: expected a whole number"),
        ({"rate_limit": {"every": "1s"}}, "rate_limit.every: unknown key"),
    ]


def test_every_broken_file_is_refused_naming_the_field(files: Files, tmp_path: Path) -> None:
    for document, message in broken(files):
        with pytest.raises(ConfigError) as caught:
            load(tmp_path, document)
        text = str(caught.value)
        assert text.startswith(f"web.config_file: {message}") or (
            text.startswith("web.config_file: ") and message in text
        ), (document, text)
        assert "\n" not in text


def test_secrets_never_reach_the_message(files: Files, tmp_path: Path) -> None:
    bad_hash = "$2b$10$" + "x" * 52  # one character short
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"basic_auth_users": {"alice": bad_hash}})
    assert "xxxx" not in str(caught.value)

    key = files.other_key.read_text()
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"tls_server_config": {"cert": files.server.cert_file.read_text(), "key": key}})
    assert str(caught.value).startswith("web.config_file: tls_server_config.key: does not match")
    assert "PRIVATE" not in str(caught.value)


def test_a_file_nested_too_deeply_is_refused_naming_the_field(tmp_path: Path) -> None:
    """Deeper than the YAML parser's recursion: a clear error, not a traceback."""
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert str(caught.value).startswith("web.config_file: ")
    assert "nested too deeply" in str(caught.value)
