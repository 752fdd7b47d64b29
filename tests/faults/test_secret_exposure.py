"""Credentials never show where a failure does: the landing page and /metrics while credentials are
refused, the messages and reprs of upstream errors, the repr of the settings, and configuration errors
about a proxy URL. (Log redaction, `Secret`'s own repr and the redirect policy have their tests in
test_logs.py, test_secrets.py and test_confluent_sync.py.)"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_settings
from exporter.config.secrets import Secret
from exporter.confluent.client import ConfluentClient
from exporter.lenses.client import LensesClient
from exporter.telemetry import Telemetry
from exporter.upstream import UpstreamError
from tests.faults.rig import SOURCES, rig, simulator_options
from tests.support import free_port

WRONG_TOKEN = "wrong-token-7f3e9a"
WRONG_KEY = "wrong-key-2b8c"
WRONG_SECRET = "wrong-secret-5d1a6e"
PROXY_PASSWORD = "proxy-pass-4c2f8b"


def secrets_in(text: str, *secrets: str) -> list[str]:
    basic = base64.b64encode(f"{WRONG_KEY}:{WRONG_SECRET}".encode()).decode()
    return [secret for secret in (*secrets, basic) if secret in text]


async def test_refused_credentials_never_reach_the_landing_page_or_metrics(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(WRONG_TOKEN)
    async with rig(
        lenses={"token": Secret(file=token)},
        confluent={"api_key": Secret(WRONG_KEY), "api_secret": Secret(WRONG_SECRET)},
    ) as running:
        page = await running.until_landing(
            lambda p: all(p[s].state == "down" and p[s].last_error for s in SOURCES), deadline=10, what="down"
        )
        assert "401" in page["lenses"].last_error and "401" in page["confluent"].last_error
        landing = (await running.http.get(running.url + "/")).text
        metrics = (await running.http.get(running.url + "/metrics")).text
        for text in (landing, metrics):
            assert not secrets_in(text, WRONG_TOKEN, WRONG_KEY, WRONG_SECRET)


async def test_a_proxy_password_never_reaches_the_landing_page(tmp_path: Path) -> None:
    proxy = f"http://user:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    async with rig(confluent={"proxy_url": proxy}) as running:
        page = await running.until_landing(
            lambda p: p["confluent"].state == "down", deadline=15, what="the proxy refusing"
        )
        landing = (await running.http.get(running.url + "/")).text
        assert page["confluent"].last_error and PROXY_PASSWORD not in landing


async def test_upstream_errors_carry_no_credentials() -> None:
    options = simulator_options()
    async with rig(options=options) as running:
        settings = running.exporter.settings
        assert settings.lenses is not None
        lenses = LensesClient(
            settings.lenses.__class__(**{**settings.lenses.__dict__, "token": Secret(WRONG_TOKEN)}),
            Telemetry(),
        )
        target = settings.confluent.targets[0]
        confluent = ConfluentClient(
            target.__class__(
                **{**target.__dict__, "api_key": Secret(WRONG_KEY), "api_secret": Secret(WRONG_SECRET)}
            ),
            Telemetry(),
        )
        errors: list[UpstreamError] = []
        try:
            for call in (lenses.list_environments(), confluent.list_agents()):
                with pytest.raises(UpstreamError) as raised:
                    await call
                errors.append(raised.value)
        finally:
            await lenses.aclose()
            await confluent.aclose()
    for error in errors:
        assert error.status == 401
        for text in (str(error), repr(error), repr(error.log_fields()), error.message):
            assert not secrets_in(text, WRONG_TOKEN, WRONG_KEY, WRONG_SECRET), text


FULL_CONFIG = f"""
lenses:
  url: http://hq.example
  token: {WRONG_TOKEN}
confluent:
  targets:
    - url: https://flink.us-east-1.aws.confluent.cloud
      organization_id: org-1
      environment_id: env-1
      api_key: {WRONG_KEY}
      api_secret: {WRONG_SECRET}
      proxy_url: http://user:{PROXY_PASSWORD}@proxy.example:3128
"""


def test_the_settings_repr_shows_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(FULL_CONFIG)
    path.chmod(0o600)
    settings = load_settings(path, {})
    for text in (repr(settings), str(settings), repr(settings.confluent.targets[0]), repr(settings.lenses)):
        assert not secrets_in(text, WRONG_TOKEN, WRONG_KEY, WRONG_SECRET, PROXY_PASSWORD), text


@pytest.mark.parametrize(
    "proxy",
    [
        f"http://user:{PROXY_PASSWORD}@proxy.example:99999",
        f"ftp://user:{PROXY_PASSWORD}@proxy.example:3128",
        f"http://user:{PROXY_PASSWORD}@proxy.example:3128/?q=1",
    ],
)
def test_a_bad_proxy_url_is_refused_without_showing_its_password(tmp_path: Path, proxy: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(FULL_CONFIG.replace(f"http://user:{PROXY_PASSWORD}@proxy.example:3128", proxy))
    path.chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    assert "proxy_url" in str(raised.value)
    assert PROXY_PASSWORD not in str(raised.value), str(raised.value)
