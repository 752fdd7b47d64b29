"""Scale-out by sharding: N exporters with `--shard=I --total-shards=N` together export exactly the data
series one exporter does, each series exactly once (run against one simulator, in-process)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from exporter.config import ConfluentSettings, ConfluentTarget, LensesSettings, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.service import Exporter
from exporter.sharding import Shard
from exporter.simulator.options import SimulatorOptions
from exporter.simulator.server import Simulator
from tests.support import eventually, parse_samples

TOTAL_SHARDS = 3
DATA_PREFIXES = ("lenses_environment_", "confluent_flink_agent_")
Series = tuple[str, frozenset[tuple[str, str]]]


def settings_for(simulator: Simulator, options: SimulatorOptions) -> Settings:
    """One exporter wired to the simulator's HQ and to every Confluent environment it serves."""
    world = simulator.world
    return Settings(
        web=WebSettings(listen_address="127.0.0.1:0"),
        lenses=LensesSettings(
            name="hq", url=f"{simulator.url}/api", token=Secret(value=options.lenses_token)
        ),
        confluent=ConfluentSettings(
            tuple(
                ConfluentTarget(
                    name=environment_id,
                    url=simulator.url,
                    organization_id=world.organization_id,
                    environment_id=environment_id,
                    api_key=Secret(value=options.confluent_api_key),
                    api_secret=Secret(value=options.confluent_api_secret),
                )
                for environment_id in world.confluent_environment_ids
            )
        ),
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Exporter]:
    exporter = Exporter(settings)
    await exporter.start()
    try:
        yield exporter
    finally:
        await exporter.stop()


async def data_series(client: httpx.AsyncClient, exporter: Exporter) -> list[Series]:
    """The exporter's data series (not its own lenses_hq_exporter_* ones) once every target has synced."""
    base = f"http://127.0.0.1:{exporter.port}"

    async def ready() -> bool:
        return (await client.get(f"{base}/readyz")).status_code == 200

    await eventually(ready, timeout=20.0, what=f"{exporter.settings.shard} to be ready")
    response = await client.get(f"{base}/metrics")
    response.raise_for_status()
    return [
        (sample.name, frozenset(sample.labels.items()))
        for sample in parse_samples(response.text)
        if sample.name.startswith(DATA_PREFIXES)
    ]


@pytest.mark.slow
async def test_shards_together_export_each_series_of_one_exporter_exactly_once() -> None:
    options = SimulatorOptions(environments=30, agents=30, confluent_environments=6, seed=3, churn=False)
    async with Simulator(options, host="127.0.0.1", port=0) as simulator:
        whole_settings = settings_for(simulator, options)
        async with httpx.AsyncClient(timeout=10.0) as client, running(whole_settings) as whole:
            expected = await data_series(client, whole)
            shards: list[list[Series]] = []
            for index in range(TOTAL_SHARDS):
                shard = dataclasses.replace(whole_settings, shard=Shard(index, TOTAL_SHARDS))
                async with running(shard) as exporter:
                    shards.append(await data_series(client, exporter))

    assert {name for name, _ in expected} >= {"lenses_environment_info", "confluent_flink_agent_info"}
    assert len(expected) == len(set(expected))
    for index, series in enumerate(shards):
        assert series, f"shard {index} of {TOTAL_SHARDS} exports nothing: the split is not spreading objects"
        assert len(series) < len(expected)
    counted = Counter(series for shard in shards for series in shard)
    duplicated = [series for series, count in counted.items() if count > 1]
    assert not duplicated, f"exported by more than one shard: {duplicated[:5]}"
    assert set(counted) == set(expected)
