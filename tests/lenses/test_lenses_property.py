"""Property: whatever environments HQ sends (missing, null, extra, wrongly typed fields, hostile strings),
through the list or the stream, the exporter keeps serving, its output parses, and label values round-trip."""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.decode import as_label
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import lenses_settings, simulator_options
from tests.lenses.test_lenses import SEED_ENVIRONMENT
from tests.support import parse_samples, promtool_check_metrics

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['"', "\\", "\n", 'a"b\\c\nd', "😀 emoji", "\\n", "}{", "=", ",", "x" * 10_000]),
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    HOSTILE,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
PATHS = [
    ("display_name",),
    ("tier",),
    ("lrn",),
    ("id",),
    ("created_at",),
    ("status",),
    ("status", "agent_connected"),
    ("status", "agent"),
    ("status", "agent", "roundtrip_duration"),
    ("status", "agent", "updated_at"),
    ("status", "agent", "agent"),
    ("status", "agent", "agent", "hostname"),
    ("status", "agent", "agent", "version"),
    ("status", "agent", "agent", "capabilities"),
    ("status", "agent", "metrics"),
    ("status", "agent", "metrics", "kafka"),
    ("status", "agent", "metrics", "kafka", "version"),
    ("status", "agent", "metrics", "data", "num_topics"),
    ("status", "agent", "metrics", "data"),
    ("status", "agent", "metrics", "apps", "num_consumers"),
    ("status", "agent", "metrics", "other", "updated_at"),
    ("metadata",),
    ("metadata", "team"),
]


@st.composite
def environments(draw: st.DrawFn) -> Any:
    """The seed's example environment with a hostile name and a few fields removed, nulled or retyped."""
    if draw(st.integers(0, 20)) == 0:
        return draw(JUNK)  # not even an object
    env = copy.deepcopy(SEED_ENVIRONMENT)
    env["name"] = draw(HOSTILE)
    env["tier"] = draw(st.one_of(st.sampled_from(["development", "staging", "production"]), HOSTILE))
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=5)):
        parent = env
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(JUNK)
    if draw(st.booleans()):
        env[draw(st.text(max_size=8))] = draw(JUNK)  # unknown field
    return env


class Harness:
    """Simulator + exporter on a loop in a background thread, so hypothesis can drive them synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.serial = 0

    def call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    async def start(self) -> None:
        from exporter.config import Settings, WebSettings
        from exporter.service import Exporter

        self.simulator = Simulator(simulator_options(environments=0))
        await self.simulator.start()
        self.exporter = Exporter(
            Settings(
                web=WebSettings(listen_address="127.0.0.1:0"),
                lenses=lenses_settings(self.simulator, metadata_labels=("team",)),
            )
        )
        await self.exporter.start()

    async def stop(self) -> None:
        await self.exporter.stop()
        await self.simulator.stop()

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.port}/metrics"


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    running = Harness()
    running.call(running.start())
    try:
        yield running
    finally:
        running.call(running.stop())
        running.loop.call_soon_threadsafe(running.loop.stop)
        running.thread.join(timeout=10)


def wait_for_marker(client: httpx.Client, url: str, marker: str) -> str:
    """Scrape until the marker environment shows up (it was sent after the batch, so the batch is in)."""
    for _ in range(500):
        text = client.get(url).text
        if f'environment="{marker}"' in text:
            return text
        threading.Event().wait(0.02)
    raise AssertionError(f"{marker} never appeared")


def expected_names(batch: list[Any]) -> set[str]:
    """The environments the exporter must show: the last object under each usable name, the name as a label
    value (lone surrogates as U+FFFD, cut at 1 KiB); of names that then read the same, the first listed."""
    latest: dict[str, Any] = {}
    for raw in batch:
        if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw["name"]:
            latest[raw["name"]] = raw
    return {as_label(name, "name") or "" for name in latest}


# The exporter and simulator run in a background thread and use `random` for jitter while hypothesis draws.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(batch=st.lists(environments(), min_size=1, max_size=6), through_list=st.booleans())
def test_hostile_environments_never_break_the_exposition(
    harness: Harness, batch: list[Any], through_list: bool
) -> None:
    world = harness.simulator.world
    for name in list(world.environments):
        world.delete_environment(name)
    for raw in batch:
        world.put_raw_environment(raw)
    harness.serial += 1
    marker = f"marker-{harness.serial}"
    world.create_environment(marker, tier="development")
    source = harness.exporter.sources[0]
    if through_list:
        assert harness.call(source.sync_once())  # type: ignore[attr-defined]
    with httpx.Client(timeout=10) as client:
        text = wait_for_marker(client, harness.metrics_url, marker)
        samples = parse_samples(text)
        shown = {s.labels["environment"] for s in samples if s.name == "lenses_environment_info"}
        assert shown == expected_names(batch) | {marker}
        for family in {s.name for s in samples if s.name.startswith("lenses_environment_")}:
            label_sets = [tuple(sorted(s.labels)) for s in samples if s.name == family]
            assert len(set(label_sets)) == 1, family
        health = client.get(harness.metrics_url.replace("/metrics", "/healthz"))
        assert health.status_code == 200
    if harness.serial % 10 == 1:
        assert promtool_check_metrics(text) == ""
