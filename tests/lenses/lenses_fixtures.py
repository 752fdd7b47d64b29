"""Running the simulator and the exporter (Lenses source) in-process, on loopback, for the Lenses tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
from prometheus_client.samples import Sample

from exporter.config import LensesSettings, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.service import Exporter
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.support import parse_samples

TOKEN = "sim-hq-token"


def simulator_options(**overrides: Any) -> SimulatorOptions:
    """A small world, quick to reconnect to (`retry: 100`)."""
    return replace(
        SimulatorOptions(environments=4, agents=0, seed=7, sse_retry_ms=100, keepalive_interval=0.1),
        **overrides,
    )


def lenses_settings(simulator: Simulator, **overrides: Any) -> LensesSettings:
    """Settings for the simulator's HQ; a long poll interval unless a test wants polling."""
    base = LensesSettings(
        name="hq",
        url=simulator.url + "/api",
        token=Secret(TOKEN),
        poll_interval=3600.0,
        sse_idle_timeout=5.0,
        timeout=5.0,
    )
    return replace(base, **overrides)


class RunningExporter:
    """An exporter serving on a free loopback port, with a client to scrape it."""

    def __init__(self, exporter: Exporter, client: httpx.AsyncClient) -> None:
        self.exporter = exporter
        self.client = client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.port}"

    async def text(self) -> str:
        response = await self.client.get(self.url + "/metrics")
        response.raise_for_status()
        return response.text

    async def samples(self) -> list[Sample]:
        return parse_samples(await self.text())

    async def value(self, name: str, **labels: str) -> float | None:
        """The one sample's value, None when there is no such series."""
        found = [
            s
            for s in await self.samples()
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, found
        return found[0].value if found else None


@asynccontextmanager
async def running_exporter(lenses: LensesSettings) -> AsyncIterator[RunningExporter]:
    """Start an exporter with this Lenses source; stop it afterwards."""
    async with running_settings(Settings(lenses=lenses)) as running:
        yield running


@asynccontextmanager
async def running_settings(settings: Settings) -> AsyncIterator[RunningExporter]:
    """Start an exporter with these settings, on a free loopback port; stop it afterwards."""
    exporter = Exporter(replace(settings, web=WebSettings(listen_address="127.0.0.1:0")))
    await exporter.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield RunningExporter(exporter, client)
    finally:
        await exporter.stop()
