"""The landing page: version and build, every target's state, last success, objects, live stream and last
error, links to the metrics, health, readiness and docs; plain HTML, escaped throughout, no JavaScript.
Read over HTTP from the real exporter, and rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from exporter import __version__
from exporter.config import Settings, WebSettings
from exporter.service import Exporter
from tests.support import IN_CI, LandingPage

HOSTILE_ERROR = (
    '<script>alert("owned")</script> HTTP 503 from /v1/environments: Unavailable & "down" '
    "(request id req-7f3a)"
)


@contextlib.asynccontextmanager
async def exporter_with_targets() -> AsyncIterator[str]:
    """The real exporter (no sources) on loopback, with three targets in three states; yields its URL."""
    exporter = Exporter(Settings(web=WebSettings(listen_address="127.0.0.1:0", telemetry_path="/m")))
    health = exporter.health
    synced = health.register("lenses", "hq-<eu>")
    synced.stream = "connected"
    synced.succeeded(0.4, 42)
    synced.last_success = time.time() - 75
    exporter.telemetry.sse_reconnects.labels("hq-<eu>").inc(3)
    failing = health.register("confluent", "prod-flink")
    failing.failed(HOSTILE_ERROR)
    health.register("confluent", "staging-flink")
    await exporter.start()
    try:
        yield f"http://127.0.0.1:{exporter.port}/"
    finally:
        await exporter.stop()


def check_page(page: LandingPage) -> None:
    """What the page must show, whoever rendered it."""
    synced = page.row("hq-<eu>")
    assert synced["state"] == "up"
    age = re.fullmatch(r"(\d+)m(\d+)s ago", synced["last success"])
    assert age and 75 <= int(age[1]) * 60 + int(age[2]) < 75 + 120, synced["last success"]
    assert synced["objects"] == "42"
    assert (synced["live stream"], synced["reconnects"]) == ("connected", "3")
    assert synced["last error"] == "—"
    failing = page.row("prod-flink")
    assert failing["state"] == "down"
    assert failing["last success"] == "never"
    assert failing["last error"] == " ".join(HOSTILE_ERROR.split())
    assert page.row("staging-flink")["state"] == "pending"
    assert {"/m", "/healthz", "/readyz"} <= set(page.links)
    assert any((link.startswith("https://") and "docs" in link) or "#readme" in link for link in page.links)
    assert "script" not in page.tags, "no JavaScript, and the hostile error stays text"
    assert not [name for name in page.attributes if name.startswith("on")], "no event handlers"


async def test_the_page_over_http() -> None:
    async with exporter_with_targets() as url, httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    text = response.text
    assert f"lenses-hq-exporter {__version__}" in text
    assert f"Python {platform.python_version()}" in text
    assert "&lt;script&gt;" in text and "<script" not in text
    check_page(LandingPage(text))


def require_chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


async def chromium(*args: str) -> str:
    """Run headless Chromium to its end; its stdout."""
    process = await asyncio.create_subprocess_exec(
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-dev-shm-usage",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    return stdout.decode()


async def test_the_page_in_a_real_browser(tmp_path: Path) -> None:
    """Chromium's DOM after rendering the page holds every figure, and the error as text, not markup."""
    require_chromium()
    async with exporter_with_targets() as url:
        dom = await chromium(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url)
    page = LandingPage(dom)
    check_page(page)
    assert f"lenses-hq-exporter {__version__}" in dom
