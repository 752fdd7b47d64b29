"""Label values from upstream: distinct names never share one label set, values and per-object fan-out are
capped (each cut counted under `lenses_hq_exporter_invalid_fields_total`), and the exposition stays valid
for both the Prometheus text parser and the OpenMetrics parser."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.samples import Sample

from exporter.config import ConfluentSettings, ConfluentTarget, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.lenses.sync import LensesSync
from exporter.service import Exporter
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.lenses.lenses_fixtures import lenses_settings, running_exporter, simulator_options
from tests.support import eventually, find, parse_samples

MAX_LABEL_BYTES = 1024
CUT = "…[cut]"
MANY = 100_000


def environment(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "tier": "development", "status": {"agent_connected": False}, **fields}


def duplicates(samples: list[Sample]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Series (name and label set) that appear more than once."""
    counts = collections.Counter((s.name, tuple(sorted(s.labels.items()))) for s in samples)
    return [series for series, count in counts.items() if count > 1]


def counted(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in find(samples, name, **labels))


async def test_names_that_differ_only_in_lone_surrogates_never_share_a_label_set() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        for name in ("sur\ud800", "sur\udc00", "sur?", "sur\ufffd"):
            simulator.world.put_raw_environment(environment(name, display_name="x\udfff"))
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            samples = await eventually(lambda: infos(exporter), what="a first listing")
            text = await exporter.text()
            assert duplicates(parse_samples(text)) == []
            openmetrics = await exporter.client.get(
                exporter.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            parsed = [s for family in openmetrics_families(openmetrics.text) for s in family.samples]
            assert duplicates(parsed) == []
            names = {s.labels["environment"] for s in samples}
            # `sur?` is its own; the lone surrogates read as U+FFFD, and of the names that then collide
            # (with each other and with a literal U+FFFD) only the first listed is kept, the rest counted.
            assert names == {"sur?", "sur\ufffd"}
            assert {s.labels["display_name"] for s in samples} == {"x\ufffd"}
            all_samples = parse_samples(text)
            assert counted(all_samples, "lenses_hq_exporter_invalid_objects_total", source="lenses") == 2


async def infos(exporter: Any) -> list[Sample]:
    return find(await exporter.samples(), "lenses_environment_info")


async def test_a_huge_name_and_fan_out_are_cut_and_counted() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        huge = "n" * 1_000_000
        simulator.world.put_raw_environment(environment(huge, display_name="d" * 1_000_000))
        simulator.world.put_raw_environment(
            environment(
                "fan-out",
                metadata={f"key{index}": "v" for index in range(MANY)} | {"team": "é" * 10_000},
                status={
                    "agent_connected": True,
                    "agent": {"agent": {"capabilities": {f"capability{i}": True for i in range(MANY)}}},
                },
            )
        )
        simulator.world.put_raw_environment(environment("small"))
        settings = lenses_settings(simulator, sse=False, metadata_labels=("team",))
        async with running_exporter(settings) as exporter:
            await eventually(lambda: infos(exporter), what="a first listing")
            text = await exporter.text()
            assert len(text) < 200_000, f"an exposition of {len(text)} bytes"
            samples = parse_samples(text)
            assert duplicates(samples) == []
            for sample in samples:
                for value in sample.labels.values():
                    assert len(value.encode()) <= MAX_LABEL_BYTES
            info = find(samples, "lenses_environment_info")
            assert {s.labels["environment"] for s in info} == {
                "small",
                "fan-out",
                "n" * (MAX_LABEL_BYTES - len(CUT.encode())) + CUT,
            }
            capabilities = find(samples, "lenses_environment_agent_capability")
            assert 0 < len(capabilities) <= 64
            metadata = find(samples, "lenses_environment_metadata_info", environment="small")
            assert metadata and metadata[0].labels["metadata_team"] == ""
            (team,) = [
                s.labels["metadata_team"]
                for s in find(samples, "lenses_environment_metadata_info", environment="fan-out")
            ]
            assert team.endswith("…[cut]") and len(team.encode()) <= MAX_LABEL_BYTES
            fields = {
                s.labels["field"]
                for s in find(samples, "lenses_hq_exporter_invalid_fields_total", source="lenses")
                if s.value > 0
            }
            assert {"name", "display_name", "capabilities", "metadata"} <= fields
            sync = next(s for s in exporter.exporter.sources if isinstance(s, LensesSync))
            held = sync._environments["fan-out"]
            assert set(held.metadata) == {"team"}, "metadata not exported was kept in memory"


@asynccontextmanager
async def confluent_exporter(simulator: Simulator) -> AsyncIterator[tuple[Exporter, httpx.AsyncClient]]:
    world = simulator.world
    target = ConfluentTarget(
        name="flink",
        url=simulator.url,
        organization_id=world.organization_id,
        environment_id=world.confluent_environment_ids[0],
        api_key=Secret("key"),
        api_secret=Secret("secret-0123456789"),
        poll_interval=3600.0,
        timeout=5.0,
    )
    settings = Settings(
        web=WebSettings(listen_address="127.0.0.1:0"), confluent=ConfluentSettings(targets=(target,))
    )
    exporter = Exporter(settings)
    await exporter.start()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield exporter, client
    finally:
        await exporter.stop()


async def test_agents_tools_and_colliding_names_are_bounded() -> None:
    options = SimulatorOptions(
        environments=0,
        agents=0,
        seed=7,
        confluent_api_key="key",
        confluent_api_secret="secret-0123456789",
        confluent_environments=1,
    )
    async with Simulator(options) as simulator:
        environment_id = simulator.world.confluent_environment_ids[0]
        for name in ("ag\ud800", "ag\udc00"):
            simulator.world.put_raw_agent(environment_id, {"name": name, "spec": {"model": "m"}})
        simulator.world.put_raw_agent(
            environment_id,
            {"name": "tools", "spec": {"model": "m" * 5000, "tools": [f"tool{i}" for i in range(MANY)]}},
        )
        async with confluent_exporter(simulator) as (exporter, client):
            url = f"http://127.0.0.1:{exporter.port}/metrics"

            async def agents() -> list[Sample]:
                response = await client.get(url)
                return find(parse_samples(response.text), "confluent_flink_agent_info")

            info = await eventually(agents, what="a first listing")
            samples = parse_samples((await client.get(url)).text)
            assert duplicates(samples) == []
            assert {s.labels["agent"] for s in info} == {"ag\ufffd", "tools"}
            tools = find(samples, "confluent_flink_agent_tool_info")
            assert 0 < len(tools) <= 128
            for sample in samples:
                for value in sample.labels.values():
                    assert len(value.encode()) <= MAX_LABEL_BYTES
            assert counted(samples, "lenses_hq_exporter_invalid_objects_total", source="confluent") == 1
            fields = {
                s.labels["field"]
                for s in find(samples, "lenses_hq_exporter_invalid_fields_total", source="confluent")
                if s.value > 0
            }
            assert {"tools", "model"} <= fields
