"""Filters over real HTTP: include/exclude per target and metrics.allow/deny. The property: the exposition
with filters is the unfiltered exposition with the excluded objects and families removed, nothing else
changed; and the filters' counts say what was kept and what was skipped."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import (
    ConfluentSettings,
    ConfluentTarget,
    MetricsSettings,
    ObjectFilter,
    Selection,
    Settings,
    WebSettings,
)
from exporter.config.secrets import Secret
from exporter.confluent.metrics import FAMILY_NAMES as CONFLUENT_FAMILIES
from exporter.lenses.metrics import FAMILY_NAMES as LENSES_FAMILIES
from exporter.service import Exporter
from exporter.simulator.server import Simulator
from exporter.simulator.world import TEAMS, TIERS
from tests.lenses.lenses_fixtures import lenses_settings, running_settings, simulator_options
from tests.support import eventually, parse_samples, promtool_check_metrics

DATA_PREFIXES = ("lenses_environment_", "confluent_flink_agent_")
FAMILIES = (*LENSES_FAMILIES, *CONFLUENT_FAMILIES)
GLOBS = ("lenses_environment_agent_*", "confluent_flink_agent_tool*", "*_info", "lenses_*", "confluent_*")


def confluent_target(simulator: Simulator, **overrides: Any) -> ConfluentTarget:
    """The simulator's first Flink environment, polled once an hour (the first poll is what counts)."""
    world = simulator.world
    base = ConfluentTarget(
        name="flink",
        url=simulator.url,
        organization_id=world.organization_id,
        environment_id=world.confluent_environment_ids[0],
        api_key=Secret(simulator.options.confluent_api_key),
        api_secret=Secret(simulator.options.confluent_api_secret),
        poll_interval=3600.0,
        timeout=5.0,
    )
    return replace(base, **overrides)


def selection(include: dict[str, str] | None = None, exclude: dict[str, str] | None = None) -> Selection:
    def one(patterns: dict[str, str] | None) -> ObjectFilter:
        return ObjectFilter(tuple((name, re.compile(text)) for name, text in (patterns or {}).items()))

    return Selection(one(include), one(exclude))


def data_families(text: str) -> dict[str, list[str]]:
    """Each data family's lines (HELP, TYPE, samples) as served, by family name."""
    families: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
        if current.startswith(DATA_PREFIXES):
            families.setdefault(current, []).append(line)
    return families


@dataclass(frozen=True)
class Filters:
    """One drawn set of filters, and what they should keep (computed here, independently of the code)."""

    tiers: frozenset[str] | None
    excluded_teams: frozenset[str]
    excluded_clusters: frozenset[str]
    allow: tuple[str, ...]
    deny: tuple[str, ...]

    def settings(self, simulator: Simulator) -> Settings:
        include = {"tier": "|".join(sorted(self.tiers))} if self.tiers is not None else None
        exclude = (
            {"environment": "(" + "|".join(sorted(self.excluded_teams)) + ")-.*"}
            if self.excluded_teams
            else None
        )
        agents_excluded = (
            {"kafka_cluster_id": "|".join(map(re.escape, sorted(self.excluded_clusters)))}
            if self.excluded_clusters
            else None
        )
        return Settings(
            web=WebSettings(listen_address="127.0.0.1:0"),
            lenses=lenses_settings(simulator, sse=False, selection=selection(include, exclude)),
            confluent=ConfluentSettings(
                (confluent_target(simulator, selection=selection(None, agents_excluded)),)
            ),
            metrics=MetricsSettings(self.allow, self.deny),
        )

    def keeps_family(self, name: str) -> bool:
        allowed = not self.allow or any(fnmatch.fnmatchcase(name, glob) for glob in self.allow)
        return allowed and not any(fnmatch.fnmatchcase(name, glob) for glob in self.deny)

    def keeps_sample(self, line: str) -> bool:
        (sample,) = parse_samples(line)
        labels = sample.labels
        if "environment" in labels:
            team = labels["environment"].split("-")[0]
            return (self.tiers is None or labels["tier"] in self.tiers) and team not in self.excluded_teams
        return labels["kafka_cluster_id"] not in self.excluded_clusters


def expected(unfiltered: str, filters: Filters) -> dict[str, list[str]]:
    """The unfiltered exposition with the excluded families and objects removed (and a family left without
    samples left out, headers and all)."""
    result: dict[str, list[str]] = {}
    for name, lines in data_families(unfiltered).items():
        if not filters.keeps_family(name):
            continue
        samples = [line for line in lines if not line.startswith("#") and filters.keeps_sample(line)]
        if samples:
            result[name] = [line for line in lines if line.startswith("#")] + samples
    return result


class Harness:
    """A simulator on a loop in a background thread; exporters started against it on demand."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    async def start(self) -> None:
        self.simulator = Simulator(simulator_options(environments=18, agents=18))
        await self.simulator.start()
        self.clusters = sorted(
            self.simulator.world.kafka_cluster_ids[self.simulator.world.confluent_environment_ids[0]]
        )
        self.unfiltered = await self.scrape(Filters(None, frozenset(), frozenset(), (), ()))

    async def scrape(self, filters: Filters) -> str:
        """The exposition of an exporter with these filters, once both targets have synced."""
        exporter = Exporter(filters.settings(self.simulator))
        await exporter.start()
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                url = f"http://127.0.0.1:{exporter.port}"

                async def ready() -> bool:
                    return (await client.get(url + "/readyz")).status_code == 200

                await eventually(ready, what="both targets synced")
                return (await client.get(url + "/metrics")).text
        finally:
            await exporter.stop()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    running = Harness()
    running.call(running.start())
    try:
        yield running
    finally:
        running.call(running.simulator.stop())
        running.loop.call_soon_threadsafe(running.loop.stop)
        running.thread.join(timeout=10)


@st.composite
def filters(draw: st.DrawFn, clusters: list[str]) -> Filters:
    names = st.sampled_from(FAMILIES) | st.sampled_from(GLOBS)
    return Filters(
        tiers=draw(st.none() | st.frozensets(st.sampled_from(TIERS), min_size=1)),
        excluded_teams=draw(st.frozensets(st.sampled_from(TEAMS[:6]), max_size=3)),
        excluded_clusters=draw(st.frozensets(st.sampled_from(clusters), max_size=2)),
        allow=tuple(draw(st.lists(names, max_size=3, unique=True)) if draw(st.booleans()) else ()),
        deny=tuple(draw(st.lists(names, max_size=4, unique=True))),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_filtered_exposition_is_the_unfiltered_one_without_the_excluded(
    harness: Harness, data: st.DataObject
) -> None:
    drawn = data.draw(filters(harness.clusters))
    text = harness.call(harness.scrape(drawn))
    assert data_families(text) == expected(harness.unfiltered, drawn)
    promtool_check_metrics(text)


def _counts(text: str, name: str) -> dict[str, float]:
    return {s.labels["source"]: s.value for s in parse_samples(text) if s.name == name}


def test_objects_count_what_is_kept_and_objects_filtered_what_is_skipped(harness: Harness) -> None:
    world = harness.simulator.world
    drawn = Filters(frozenset({"production"}), frozenset(), frozenset(harness.clusters[:1]), (), ())
    text = harness.call(harness.scrape(drawn))
    production = sum(1 for environment in world.environments.values() if environment["tier"] == "production")
    assert _counts(text, "lenses_hq_exporter_objects")["lenses"] == production
    assert (
        _counts(text, "lenses_hq_exporter_objects_filtered")["lenses"] == len(world.environments) - production
    )
    unfiltered = _counts(harness.unfiltered, "lenses_hq_exporter_objects")["confluent"]
    kept = _counts(text, "lenses_hq_exporter_objects")["confluent"]
    skipped = _counts(text, "lenses_hq_exporter_objects_filtered")["confluent"]
    assert kept + skipped == unfiltered and skipped > 0


async def test_an_environment_moved_out_of_the_filter_by_the_stream_loses_its_series() -> None:
    async with Simulator(simulator_options(environments=6)) as simulator:
        name = next(n for n, e in simulator.world.environments.items() if e["tier"] != "production")
        hq = lenses_settings(simulator, selection=selection(exclude={"tier": "production"}))
        async with running_settings(Settings(lenses=hq)) as exporter:

            async def listed() -> float | None:
                return await exporter.value("lenses_environment_info", environment=name)

            await eventually(listed, what="the environment listed")
            skipped = await exporter.value("lenses_hq_exporter_objects_filtered", source="lenses")
            simulator.world.set_tier(name, "production")

            async def gone() -> bool:
                return 'environment="' + name + '"' not in await exporter.text()

            await eventually(gone, what="the environment's series gone")
            assert (
                await exporter.value("lenses_hq_exporter_objects_filtered", source="lenses")
                == (skipped or 0) + 1
            )
