"""Numbers and times as HQ may write them, against the simulator over real HTTP: decimal strings are read,
zero times are absent, negative counts are dropped and counted, an implausible round-trip unit is said."""

from __future__ import annotations

import copy

import pytest
from structlog.testing import capture_logs

from exporter.decode import as_number, as_timestamp
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import RunningExporter, lenses_settings, running_exporter, simulator_options
from tests.lenses.test_lenses import SEED_ENVIRONMENT
from tests.support import eventually, find, promtool_check_metrics

INVALID_FIELDS = "lenses_hq_exporter_invalid_fields_total"


async def listed(exporter: RunningExporter, name: str) -> bool:
    return bool(find(await exporter.samples(), "lenses_environment_info", environment=name))


async def test_decimal_strings_are_numbers_and_no_error() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        environment = copy.deepcopy(SEED_ENVIRONMENT)
        data = environment["status"]["agent"]["metrics"]["data"]
        data["num_partitions"] = "42"
        data["topic_data_total_bytes"] = "9007199254740993"  # 2^53 + 1: a float, the nearest one
        data["data_in_bytes_per_sec"] = "1250.5"
        environment["status"]["agent"]["roundtrip_duration"] = "2500000"
        simulator.world.put_raw_environment(environment)
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            await eventually(lambda: listed(exporter, "text"), what="a first listing")
            samples = await exporter.samples()
            assert find(samples, "lenses_environment_partitions", environment="text")[0].value == 42
            assert find(samples, "lenses_environment_topic_data_bytes")[0].value == 9007199254740992.0
            assert find(samples, "lenses_environment_data_in_bytes_per_second")[0].value == 1250.5
            assert find(samples, "lenses_environment_agent_roundtrip_seconds")[0].value == 0.0025
            assert not [s for s in find(samples, INVALID_FIELDS) if s.value > 0]
            assert promtool_check_metrics(await exporter.text()) == ""


async def test_zero_and_pre_2000_times_are_absent() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        environment = copy.deepcopy(SEED_ENVIRONMENT)
        environment["created_at"] = "0001-01-01T00:00:00Z"
        agent = environment["status"]["agent"]
        agent["updated_at"] = "1970-01-01T00:00:00Z"
        agent["metrics"]["kafka"]["updated_at"] = "1999-12-31T23:59:59Z"
        simulator.world.put_raw_environment(environment)
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            await eventually(lambda: listed(exporter, "text"), what="a first listing")
            samples = await exporter.samples()
            assert not find(samples, "lenses_environment_created_timestamp_seconds")
            assert not find(samples, "lenses_environment_agent_updated_timestamp_seconds")
            sections = {
                s.labels["section"]
                for s in find(samples, "lenses_environment_metrics_updated_timestamp_seconds")
            }
            assert sections == {"data", "apps", "connect", "other"}


async def test_negative_counts_are_dropped_and_counted() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        environment = copy.deepcopy(SEED_ENVIRONMENT)
        environment["status"]["agent"]["metrics"]["data"]["num_topics"] = -3
        environment["status"]["agent"]["metrics"]["data"]["topic_data_total_bytes"] = "-1"
        simulator.world.put_raw_environment(environment)
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            await eventually(lambda: listed(exporter, "text"), what="a first listing")
            samples = await exporter.samples()
            assert not find(samples, "lenses_environment_topics")
            assert not find(samples, "lenses_environment_topic_data_bytes")
            assert find(samples, "lenses_environment_partitions")[0].value == 1
            for field in ("num_topics", "topic_data_total_bytes"):
                counted = find(samples, INVALID_FIELDS, source="lenses", target="hq", field=field)
                assert counted and counted[0].value == 1, field


async def test_an_implausible_roundtrip_unit_is_said_once() -> None:
    async with Simulator(simulator_options()) as simulator:
        with capture_logs() as logs:
            settings = lenses_settings(simulator, sse=False, roundtrip_duration_unit="s")
            async with running_exporter(settings) as exporter:
                sync = exporter.exporter.sources[0]
                await eventually(
                    lambda: exporter.value("lenses_hq_exporter_up", target="hq"), what="a listing"
                )
                assert await sync.sync_once()  # type: ignore[attr-defined]
        warnings = [entry for entry in logs if entry.get("event") == "roundtrip_implausible"]
        assert len(warnings) == 1, warnings
        assert "lenses.roundtrip_duration_unit" in warnings[0]["hint"]
        with capture_logs() as logs:
            async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
                await eventually(
                    lambda: exporter.value("lenses_hq_exporter_up", target="hq"), what="a listing"
                )
        assert not [entry for entry in logs if entry.get("event") == "roundtrip_implausible"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42.0),
        ("-7", -7.0),
        ("9007199254740993", 9007199254740992.0),
        ("1250.5", 1250.5),
        ("1e3", 1000.0),
        ("1e400", None),  # infinite
        ("nan", None),
        ("inf", None),
        ("0x10", None),
        (" 4", None),
        ("1_000", None),
        ("", None),
        ("9" * 65, None),  # longer than any number HQ writes
        (True, None),
        (None, None),
    ],
)
def test_numbers_are_read_from_decimal_strings_only(value: object, expected: float | None) -> None:
    assert as_number(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
        ("1999-12-31T23:59:59Z", None),
        ("2000-01-01T00:00:00Z", 946684800.0),
        ("2025-10-24T16:23:29.612Z", 1761323009.612),
    ],
)
def test_times_before_2000_are_absent(text: str, expected: float | None) -> None:
    assert as_timestamp(text) == expected
