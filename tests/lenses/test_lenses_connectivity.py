"""An agent's connectivity against the simulator over real HTTP: 1 or 0 only when HQ says so, and every
change seen (on the live stream or between two listings) counted."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.lenses.sync import LensesSync
from exporter.simulator.server import Simulator
from exporter.simulator.world import MISSING, NO_STATUS
from tests.lenses.lenses_fixtures import RunningExporter, lenses_settings, running_exporter, simulator_options
from tests.support import eventually, find, promtool_check_metrics

CONNECTED = "lenses_environment_agent_connected"
DISCONNECTS = "lenses_environment_agent_disconnects_total"
CONNECTS = "lenses_environment_agent_connects_total"
LAST_CHANGE = "lenses_environment_agent_last_change_timestamp_seconds"
INVALID_FIELDS = "lenses_hq_exporter_invalid_fields_total"


@pytest.fixture
async def simulator() -> Any:
    async with Simulator(simulator_options()) as running:
        yield running


async def stream_open(exporter: RunningExporter) -> bool:
    return await exporter.value("lenses_hq_exporter_sse_connected", target="hq") == 1


def first_connected(simulator: Simulator) -> str:
    return next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))


@pytest.mark.parametrize(
    "value",
    [MISSING, None, "true", 1, NO_STATUS],
    ids=["missing", "null", "string", "number", "no-status"],
)
async def test_unknown_connectivity_is_no_series_and_is_counted_and_logged_once(
    simulator: Simulator, value: Any
) -> None:
    name = first_connected(simulator)
    simulator.world.set_agent_connected(name, value)
    with capture_logs() as logs:
        async with running_exporter(lenses_settings(simulator, sse=False, poll_interval=0.2)) as exporter:

            async def listed_twice() -> bool:
                requests = await exporter.value(
                    "lenses_hq_exporter_upstream_requests_total", source="lenses", endpoint="environments"
                )
                return (requests or 0) >= 2

            await eventually(listed_twice, what="two listings")
            samples = await exporter.samples()
            assert find(samples, "lenses_environment_info", environment=name)
            assert not find(samples, CONNECTED, environment=name), "unknown must not read as disconnected"
            others = [s for s in find(samples, CONNECTED) if s.labels["environment"] != name]
            assert len(others) == len(simulator.world.environments) - 1
            invalid = find(samples, INVALID_FIELDS, source="lenses", target="hq", field="agent_connected")
            assert invalid and invalid[0].value >= 1
            assert promtool_check_metrics(await exporter.text()) == ""
    warnings = [entry for entry in logs if entry.get("event") == "environment_field_invalid"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["environment"] == name
    assert warnings[0]["fields"] == "agent_connected"
    assert warnings[0]["request_id"]


async def test_connectivity_becoming_unknown_on_the_stream_removes_the_series(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: stream_open(exporter), what="the live stream")
        name = first_connected(simulator)
        assert await exporter.value(CONNECTED, environment=name) == 1
        simulator.world.set_agent_connected(name, None)

        async def gone() -> bool:
            return await exporter.value(CONNECTED, environment=name) is None

        await eventually(gone, what="the connectivity series to go")
        assert await exporter.value(DISCONNECTS, environment=name) == 0


async def test_a_burst_of_flaps_on_the_stream_is_counted_in_full(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: stream_open(exporter), what="the live stream")
        name = first_connected(simulator)
        assert await exporter.value(DISCONNECTS, environment=name) == 0
        assert await exporter.value(CONNECTS, environment=name) == 0
        assert await exporter.value(LAST_CHANGE, environment=name) is None
        for _ in range(3):  # three disconnect/connect pairs, well within 200 ms, between two scrapes
            simulator.world.disconnect_agent(name)
            simulator.world.connect_agent(name)

        async def counted() -> bool:
            return await exporter.value(CONNECTS, environment=name) == 3

        await eventually(counted, what="three connects (the poll interval is an hour)")
        assert await exporter.value(DISCONNECTS, environment=name) == 3
        assert await exporter.value(CONNECTED, environment=name) == 1
        assert (await exporter.value(LAST_CHANGE, environment=name) or 0) > 1.7e9
        other = next(n for n in sorted(simulator.world.environments) if n != name)
        assert await exporter.value(DISCONNECTS, environment=other) == 0
        assert await exporter.value(LAST_CHANGE, environment=other) is None
        assert promtool_check_metrics(await exporter.text()) == ""


async def test_a_change_between_two_listings_is_counted_once(simulator: Simulator) -> None:
    settings = lenses_settings(simulator, sse=False)
    async with running_exporter(settings) as exporter:
        name = first_connected(simulator)
        await eventually(lambda: exporter.value(CONNECTED, environment=name), what="a first listing")
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)
        simulator.world.disconnect_agent(name)
        assert await sync.sync_once()
        assert await sync.sync_once()  # the same state again is no change
        assert await exporter.value(CONNECTED, environment=name) == 0
        assert await exporter.value(DISCONNECTS, environment=name) == 1
        assert await exporter.value(CONNECTS, environment=name) == 0
        simulator.world.connect_agent(name)
        assert await sync.sync_once()
        assert await exporter.value(CONNECTS, environment=name) == 1


async def test_the_counters_go_with_the_environment_and_restart_when_it_returns(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: stream_open(exporter), what="the live stream")
        name = first_connected(simulator)
        simulator.world.disconnect_agent(name)
        await eventually(lambda: _equals(exporter, DISCONNECTS, name, 1), what="one disconnect")
        simulator.world.delete_environment(name)

        async def gone() -> bool:
            samples = await exporter.samples()
            return not any(
                s.labels.get("environment") == name
                for n in (DISCONNECTS, CONNECTS, LAST_CHANGE)
                for s in find(samples, n)
            )

        await eventually(gone, what="the counters to go with the environment")
        simulator.world.create_environment(name)
        await eventually(lambda: _equals(exporter, CONNECTED, name, 1), what="the environment back")
        assert await exporter.value(DISCONNECTS, environment=name) == 0
        assert await exporter.value(LAST_CHANGE, environment=name) is None


async def _equals(exporter: RunningExporter, metric: str, environment: str, value: float) -> bool:
    return await exporter.value(metric, environment=environment) == value


async def test_a_relisting_keeps_the_counts_the_stream_made(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: stream_open(exporter), what="the live stream")
        name = first_connected(simulator)
        simulator.world.disconnect_agent(name)
        await eventually(lambda: _equals(exporter, DISCONNECTS, name, 1), what="one disconnect")
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)
        assert await sync.sync_once()
        assert await exporter.value(DISCONNECTS, environment=name) == 1
        assert await exporter.value(CONNECTS, environment=name) == 0


async def test_a_change_through_an_unknown_state_still_counts(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: stream_open(exporter), what="the live stream")
        name = first_connected(simulator)
        simulator.world.set_agent_connected(name, None)
        await eventually(lambda: _equals_none(exporter, name), what="connectivity unknown")
        simulator.world.disconnect_agent(name)  # connected, unknown, disconnected: one disconnect
        await eventually(lambda: _equals(exporter, CONNECTED, name, 0), what="disconnected")
        assert await exporter.value(DISCONNECTS, environment=name) == 1
        simulator.world.set_agent_connected(name, "yes")
        await eventually(lambda: _equals_none(exporter, name), what="connectivity unknown again")
        simulator.world.disconnect_agent(name)  # disconnected, unknown, disconnected: no change
        await eventually(lambda: _equals(exporter, CONNECTED, name, 0), what="disconnected again")
        assert await exporter.value(DISCONNECTS, environment=name) == 1
        assert await exporter.value(CONNECTS, environment=name) == 0


async def _equals_none(exporter: RunningExporter, environment: str) -> bool:
    return await exporter.value(CONNECTED, environment=environment) is None
