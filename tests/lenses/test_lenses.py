"""The Lenses HQ source against the simulator over real HTTP: exposition, live stream, polling, faults."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exporter.config.secrets import Secret
from exporter.lenses.sync import LensesSync
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import (
    TOKEN,
    RunningExporter,
    lenses_settings,
    running_exporter,
    simulator_options,
)
from tests.support import eventually, parse_samples, promtool_check_metrics

SEED_ENVIRONMENT: dict[str, Any] = {
    "name": "text",
    "display_name": "text",
    "lrn": "text",
    "id": "text",
    "created_at": "2025-10-24T16:23:29.612Z",
    "tier": "development",
    "status": {
        "agent_connected": True,
        "agent": {
            "updated_at": "2025-10-24T16:23:29.612Z",
            "roundtrip_duration": 1,
            "agent": {"hostname": "text", "version": "text", "capabilities": {"metrics": True, "k2k": True}},
            "metrics": {
                "kafka": {"version": "text", "num_brokers": 1, "updated_at": "2025-10-24T16:23:29.612Z"},
                "data": {
                    "num_topics": 1,
                    "num_partitions": 1,
                    "num_schemas": 1,
                    "num_policies": 1,
                    "topic_data_total_bytes": 1,
                    "data_in_bytes_per_sec": 1,
                    "data_out_bytes_per_sec": 1,
                    "data_in_messages_per_sec": 1,
                    "updated_at": "2025-10-24T16:23:29.612Z",
                },
                "apps": {"num_consumers": 1, "num_other_apps": 1, "updated_at": "2025-10-24T16:23:29.612Z"},
                "connect": {"num_clusters": 1, "num_connectors": 1, "updated_at": "2025-10-24T16:23:29.612Z"},
                "other": {"num_issues": 1, "updated_at": "2025-10-24T16:23:29.612Z"},
            },
        },
    },
    "metadata": {"ANY_ADDITIONAL_PROPERTY": "text"},
}

# What the seed's example environment must look like on /metrics (2025-10-24T16:23:29.612Z = 1761323009.612;
# roundtrip_duration 1 in the default unit, nanoseconds).
SEED_EXPOSITION = """\
# HELP lenses_environment_info Environment identity; value 1.
# TYPE lenses_environment_info gauge
lenses_environment_info{environment="text",tier="development",target="hq",display_name="text",id="text",lrn="text"} 1
# HELP lenses_environment_created_timestamp_seconds When the environment was created (Unix seconds).
# TYPE lenses_environment_created_timestamp_seconds gauge
lenses_environment_created_timestamp_seconds{environment="text",tier="development",target="hq"} 1761323009.612
# HELP lenses_environment_agent_connected 1 when HQ reports the environment's agent connected, 0 when it reports it disconnected; absent when HQ reports no boolean (unknown is not disconnected).
# TYPE lenses_environment_agent_connected gauge
lenses_environment_agent_connected{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_agent_disconnects_total Changes from connected to disconnected the exporter saw (live stream or listings) since it first saw the environment.
# TYPE lenses_environment_agent_disconnects_total counter
lenses_environment_agent_disconnects_total{environment="text",tier="development",target="hq"} 0
# HELP lenses_environment_agent_connects_total Changes from disconnected to connected the exporter saw (live stream or listings) since it first saw the environment.
# TYPE lenses_environment_agent_connects_total counter
lenses_environment_agent_connects_total{environment="text",tier="development",target="hq"} 0
# HELP lenses_environment_agent_info The agent's hostname, version and protocol version; value 1.
# TYPE lenses_environment_agent_info gauge
lenses_environment_agent_info{environment="text",tier="development",target="hq",hostname="text",version="text",protocol_version=""} 1
# HELP lenses_environment_agent_capability 1 when the agent reports the capability enabled, 0 when disabled.
# TYPE lenses_environment_agent_capability gauge
lenses_environment_agent_capability{environment="text",tier="development",target="hq",capability="k2k"} 1
lenses_environment_agent_capability{environment="text",tier="development",target="hq",capability="metrics"} 1
# HELP lenses_environment_agent_roundtrip_seconds Round-trip time between HQ and the agent.
# TYPE lenses_environment_agent_roundtrip_seconds gauge
lenses_environment_agent_roundtrip_seconds{environment="text",tier="development",target="hq"} 1e-09
# HELP lenses_environment_agent_updated_timestamp_seconds When the agent last reported (Unix seconds).
# TYPE lenses_environment_agent_updated_timestamp_seconds gauge
lenses_environment_agent_updated_timestamp_seconds{environment="text",tier="development",target="hq"} 1761323009.612
# HELP lenses_environment_kafka_info The Kafka version the agent reports; value 1.
# TYPE lenses_environment_kafka_info gauge
lenses_environment_kafka_info{environment="text",tier="development",target="hq",version="text"} 1
# HELP lenses_environment_kafka_brokers Kafka brokers.
# TYPE lenses_environment_kafka_brokers gauge
lenses_environment_kafka_brokers{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_topics Topics.
# TYPE lenses_environment_topics gauge
lenses_environment_topics{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_partitions Partitions.
# TYPE lenses_environment_partitions gauge
lenses_environment_partitions{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_schemas Schemas.
# TYPE lenses_environment_schemas gauge
lenses_environment_schemas{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_policies Data policies.
# TYPE lenses_environment_policies gauge
lenses_environment_policies{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_topic_data_bytes Bytes of data held in all topics.
# TYPE lenses_environment_topic_data_bytes gauge
lenses_environment_topic_data_bytes{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_data_in_bytes_per_second Bytes per second produced into the cluster.
# TYPE lenses_environment_data_in_bytes_per_second gauge
lenses_environment_data_in_bytes_per_second{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_data_out_bytes_per_second Bytes per second consumed from the cluster.
# TYPE lenses_environment_data_out_bytes_per_second gauge
lenses_environment_data_out_bytes_per_second{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_data_in_messages_per_second Messages per second produced into the cluster.
# TYPE lenses_environment_data_in_messages_per_second gauge
lenses_environment_data_in_messages_per_second{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_consumers Consumer applications.
# TYPE lenses_environment_consumers gauge
lenses_environment_consumers{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_other_apps Applications other than consumers.
# TYPE lenses_environment_other_apps gauge
lenses_environment_other_apps{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_connect_clusters Kafka Connect clusters.
# TYPE lenses_environment_connect_clusters gauge
lenses_environment_connect_clusters{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_connectors Kafka Connect connectors.
# TYPE lenses_environment_connectors gauge
lenses_environment_connectors{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_issues Issues the agent reports.
# TYPE lenses_environment_issues gauge
lenses_environment_issues{environment="text",tier="development",target="hq"} 1
# HELP lenses_environment_metrics_updated_timestamp_seconds When each metrics section was last updated (Unix seconds).
# TYPE lenses_environment_metrics_updated_timestamp_seconds gauge
lenses_environment_metrics_updated_timestamp_seconds{environment="text",tier="development",target="hq",section="kafka"} 1761323009.612
lenses_environment_metrics_updated_timestamp_seconds{environment="text",tier="development",target="hq",section="data"} 1761323009.612
lenses_environment_metrics_updated_timestamp_seconds{environment="text",tier="development",target="hq",section="apps"} 1761323009.612
lenses_environment_metrics_updated_timestamp_seconds{environment="text",tier="development",target="hq",section="connect"} 1761323009.612
lenses_environment_metrics_updated_timestamp_seconds{environment="text",tier="development",target="hq",section="other"} 1761323009.612
"""  # noqa: E501


def lenses_part(text: str) -> str:
    """The lines of the Lenses data families, in order."""
    return "".join(
        line + "\n"
        for line in text.splitlines()
        if line.startswith(
            ("lenses_environment_", "# HELP lenses_environment_", "# TYPE lenses_environment_")
        )
    )


async def connected(exporter: RunningExporter) -> bool:
    return await exporter.value("lenses_hq_exporter_sse_connected", target="hq") == 1


async def series_of(exporter: RunningExporter, environment: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (s.name, s.labels)
        for s in await exporter.samples()
        if s.name.startswith("lenses_environment_") and s.labels.get("environment") == environment
    ]


@pytest.fixture
async def simulator() -> Any:
    async with Simulator(simulator_options()) as running:
        yield running


async def test_seed_example_yields_exactly_the_expected_exposition() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        simulator.world.put_raw_environment(copy.deepcopy(SEED_ENVIRONMENT))
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            text = await eventually(exporter.text, what="a first sync")
            await eventually(
                lambda: _has(exporter, "lenses_environment_info"), what="the seed environment on /metrics"
            )
            text = await exporter.text()
            assert lenses_part(text) == SEED_EXPOSITION
            assert promtool_check_metrics(text) == ""


async def _has(exporter: RunningExporter, name: str) -> bool:
    return any(s.name == name for s in await exporter.samples())


async def test_full_output_is_clean_for_promtool_and_openmetrics(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator, metadata_labels=("team", "region"))) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        text = await exporter.text()
        assert promtool_check_metrics(text) == ""
        names = {s.labels["environment"] for s in parse_samples(text) if s.name == "lenses_environment_info"}
        assert names == set(simulator.world.environments)
        assert 'metadata_team="' in text
        openmetrics = await exporter.client.get(
            exporter.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        assert any(
            f.name == "lenses_environment_agent_connected"
            for f in text_string_to_metric_families(openmetrics.text)
        )
        gzipped = await exporter.client.get(exporter.url + "/metrics", headers={"Accept-Encoding": "gzip"})
        assert gzipped.headers["content-encoding"] == "gzip"
        assert lenses_part(gzipped.text) == lenses_part(text) or "lenses_environment_info" in gzipped.text


async def test_deleting_an_environment_removes_all_its_series_by_the_stream(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        victim = sorted(simulator.world.environments)[0]
        assert await series_of(exporter, victim)
        simulator.world.delete_environment(victim)
        await eventually(lambda: _none(exporter, victim), what="the deleted environment's series to go")
        assert await exporter.value("lenses_hq_exporter_objects", source="lenses", target="hq") == len(
            simulator.world.environments
        )


async def _none(exporter: RunningExporter, environment: str) -> bool:
    return not await series_of(exporter, environment)


async def test_deleting_an_environment_with_the_stream_off_removes_it_at_the_next_poll() -> None:
    async with Simulator(simulator_options(sse_enabled=False)) as simulator:
        settings = lenses_settings(simulator, poll_interval=0.3)
        async with running_exporter(settings) as exporter:
            victim = sorted(simulator.world.environments)[0]
            await eventually(lambda: series_of(exporter, victim), what="a first listing")
            simulator.world.delete_environment(victim)
            await eventually(lambda: _none(exporter, victim), what="the next poll to drop it")
            assert await exporter.value("lenses_hq_exporter_sse_connected", target="hq") == 0


async def test_tier_change_moves_the_series_and_leaves_no_duplicate(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        name = sorted(simulator.world.environments)[0]
        old_tier = simulator.world.environments[name]["tier"]
        new_tier = "production" if old_tier != "production" else "staging"
        before = await series_of(exporter, name)
        simulator.world.set_tier(name, new_tier)

        async def moved() -> bool:
            return {labels["tier"] for _, labels in await series_of(exporter, name)} == {new_tier}

        await eventually(moved, what="the series to move to the new tier")
        after = await series_of(exporter, name)
        assert len(after) == len(before)
        assert len({(n, tuple(sorted(labels.items()))) for n, labels in after}) == len(after)


async def test_agent_disconnect_reaches_metrics_by_the_stream_alone(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        name = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        assert await exporter.value("lenses_environment_agent_connected", environment=name) == 1
        simulator.world.disconnect_agent(name)

        async def disconnected() -> bool:
            return await exporter.value("lenses_environment_agent_connected", environment=name) == 0

        await eventually(disconnected, timeout=5, what="agent_connected 0 (poll interval is an hour)")
        names = {series for series, _ in await series_of(exporter, name)}
        assert names == {
            "lenses_environment_info",
            "lenses_environment_created_timestamp_seconds",
            "lenses_environment_agent_connected",
            "lenses_environment_agent_disconnects_total",
            "lenses_environment_agent_connects_total",
            "lenses_environment_agent_last_change_timestamp_seconds",
        }
        simulator.world.connect_agent(name)

        async def reconnected() -> bool:
            return await exporter.value("lenses_environment_agent_connected", environment=name) == 1

        await eventually(reconnected, what="agent_connected back to 1")


async def test_a_missing_block_or_wrong_field_drops_only_its_series() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        broken = copy.deepcopy(SEED_ENVIRONMENT)
        broken["name"] = "partial"
        del broken["status"]["agent"]["metrics"]["data"]
        broken["status"]["agent"]["metrics"]["connect"]["num_connectors"] = "many"
        broken["status"]["agent"]["roundtrip_duration"] = None
        simulator.world.put_raw_environment(broken)
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            await eventually(lambda: series_of(exporter, "partial"), what="a first listing")
            names = {series for series, _ in await series_of(exporter, "partial")}
            for gone in (
                "lenses_environment_topics",
                "lenses_environment_data_in_bytes_per_second",
                "lenses_environment_connectors",
                "lenses_environment_agent_roundtrip_seconds",
            ):
                assert gone not in names
            for kept in ("lenses_environment_connect_clusters", "lenses_environment_kafka_brokers"):
                assert kept in names
            sections = {
                labels["section"]
                for series, labels in await series_of(exporter, "partial")
                if series == "lenses_environment_metrics_updated_timestamp_seconds"
            }
            assert sections == {"kafka", "apps", "connect", "other"}


async def test_roundtrip_unit_and_kafka_connections_poll() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        seed = copy.deepcopy(SEED_ENVIRONMENT)
        seed["status"]["agent"]["roundtrip_duration"] = 250
        simulator.world.put_raw_environment(seed)
        simulator.world.put_connection("text", "main", {"override_broker_addresses": ["b:9092"], "auth": {}})
        simulator.world.put_connection("text", "backup", {"auth": {}})
        settings = lenses_settings(simulator, sse=False, roundtrip_duration_unit="ms", kafka_connections=True)
        async with running_exporter(settings) as exporter:

            async def counted() -> float | None:
                return await exporter.value("lenses_environment_kafka_connections", environment="text")

            assert await eventually(counted, what="the connections count") == 2
            assert (
                await exporter.value("lenses_environment_agent_roundtrip_seconds", environment="text") == 0.25
            )
            text = await exporter.text()
        connections = {
            (s.labels["connection"], s.labels["auth_type"], s.labels["brokers_overridden"], s.value)
            for s in parse_samples(text)
            if s.name == "lenses_environment_kafka_connection_info"
        }
        assert connections == {("main", "plaintext", "true", 1.0), ("backup", "plaintext", "false", 1.0)}
        assert "b:9092" not in text, "broker addresses are never exported"
        promtool_check_metrics(text)


async def test_kafka_connections_with_an_auth_type_and_no_poll() -> None:
    async with Simulator(simulator_options(environments=0)) as simulator:
        simulator.world.put_raw_environment(copy.deepcopy(SEED_ENVIRONMENT))
        simulator.world.put_connection(
            "text", "secure", {"auth": {"sasl_scram": {"username": "u", "password": "p4ss"}}}
        )
        async with running_exporter(
            lenses_settings(simulator, sse=False, kafka_connections=True)
        ) as exporter:

            async def info() -> list[dict[str, str]]:
                return [
                    s.labels
                    for s in await exporter.samples()
                    if s.name == "lenses_environment_kafka_connection_info"
                ]

            (labels,) = await eventually(info, what="the connection's info")
            assert (labels["auth_type"], labels["brokers_overridden"]) == ("sasl_scram", "false")
            assert "p4ss" not in await exporter.text()
        async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
            await eventually(lambda: exporter.value("lenses_environment_info", environment="text"))
            assert "lenses_environment_kafka_connection_info" not in await exporter.text()


# -- faults ------------------------------------------------------------------------------------------


async def test_stream_cut_in_the_middle_of_an_event_recovers(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        name = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        simulator.faults.sse_cut_next_event()
        simulator.world.set_metrics(name, "data", num_topics=4242)

        async def reconnected() -> bool:
            return (await exporter.value("lenses_hq_exporter_sse_reconnects_total", target="hq") or 0) >= 1

        await eventually(reconnected, what="a reconnect after the cut")

        async def applied() -> bool:
            return await exporter.value("lenses_environment_topics", environment=name) == 4242

        await eventually(applied, what="the cut update to arrive after the reconnect")
        await eventually(lambda: connected(exporter), what="the stream to be open again")
        assert await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 1


async def test_silent_stream_is_treated_as_dead_after_the_idle_timeout(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator, sse_idle_timeout=0.5)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        simulator.faults.sse_stall = True

        async def timed_out() -> bool:
            failures = await exporter.value(
                "lenses_hq_exporter_upstream_request_failures_total",
                source="lenses",
                endpoint="stream",
                reason="timeout",
            )
            return (failures or 0) >= 1

        await eventually(timed_out, what="an idle-timeout failure on the stream")
        simulator.faults.sse_stall = False
        await eventually(lambda: connected(exporter), what="the stream to come back")
        name = sorted(simulator.world.environments)[0]
        simulator.world.set_tier(
            name, "staging" if simulator.world.environments[name]["tier"] != "staging" else "development"
        )
        tier = simulator.world.environments[name]["tier"]

        async def moved() -> bool:
            return (
                await exporter.value("lenses_environment_agent_connected", environment=name, tier=tier)
                is not None
            )

        await eventually(moved, what="updates flowing again")


async def test_stream_404_means_polling_only_and_the_stream_is_probed_again() -> None:
    async with Simulator(simulator_options(sse_enabled=False)) as simulator:
        settings = lenses_settings(simulator, poll_interval=0.3, sse_unavailable_probe_interval=0.5)
        with capture_logs() as logs:
            async with running_exporter(settings) as exporter:
                name = sorted(simulator.world.environments)[0]
                await eventually(lambda: series_of(exporter, name), what="a first listing")
                simulator.world.set_tier(
                    name,
                    "production" if simulator.world.environments[name]["tier"] != "production" else "staging",
                )
                tier = simulator.world.environments[name]["tier"]

                async def polled() -> bool:
                    return await exporter.value("lenses_environment_info", environment=name, tier=tier) == 1

                await eventually(polled, what="polling to carry the change")
                simulator.faults.sse_enabled = True
                await eventually(lambda: connected(exporter), what="the stream to be found again")
        said = [entry for entry in logs if entry["event"] == "stream_unavailable"]
        assert len(said) == 1, said


async def test_5xx_burst_keeps_last_good_values_then_recovers(simulator: Simulator) -> None:
    async with running_exporter(lenses_settings(simulator, sse=False, poll_interval=0.2)) as exporter:
        name = sorted(simulator.world.environments)[0]
        await eventually(lambda: series_of(exporter, name), what="a first listing")
        before = await series_of(exporter, name)
        first_success = await exporter.value(
            "lenses_hq_exporter_last_success_timestamp_seconds", source="lenses", target="hq"
        )
        simulator.faults.script(503, api="lenses", path="/v1/environments", count=None)

        async def down() -> bool:
            return await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 0

        await eventually(down, what="up 0 while HQ answers 503")
        assert await series_of(exporter, name) == before
        stuck = await exporter.value(
            "lenses_hq_exporter_last_success_timestamp_seconds", source="lenses", target="hq"
        )
        assert stuck is not None and first_success is not None and stuck >= first_success
        assert (
            await exporter.value(
                "lenses_hq_exporter_upstream_request_failures_total",
                source="lenses",
                endpoint="environments",
                reason="http_5xx",
            )
            or 0
        ) >= 1
        simulator.faults.clear()

        async def up() -> bool:
            return await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 1

        await eventually(up, what="recovery after the burst")
        recovered = await exporter.value(
            "lenses_hq_exporter_last_success_timestamp_seconds", source="lenses", target="hq"
        )
        assert recovered is not None and recovered > stuck


@pytest.mark.parametrize("headers", [{"Retry-After": "1"}, {}], ids=["retry-after", "no-headers"])
async def test_429_is_waited_out_within_the_sync(simulator: Simulator, headers: dict[str, str]) -> None:
    simulator.faults.script(429, api="lenses", path="/v1/environments", headers=headers, body="", count=1)
    async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:

        async def up() -> bool:
            return await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 1

        await eventually(up, what="the sync to complete after the 429")
        assert (
            await exporter.value(
                "lenses_hq_exporter_upstream_request_failures_total",
                source="lenses",
                endpoint="environments",
                reason="http_429",
            )
            == 1
        )
        assert (
            await exporter.value(
                "lenses_hq_exporter_upstream_requests_total", source="lenses", endpoint="environments"
            )
            == 2
        )


async def test_401_then_fixed_token_file_recovers_and_logs_once(simulator: Simulator, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token\n")
    settings = lenses_settings(simulator, token=Secret(file=token_file), poll_interval=0.2)
    with capture_logs() as logs:
        async with running_exporter(settings) as exporter:

            async def failed_twice() -> bool:
                return (
                    await exporter.value(
                        "lenses_hq_exporter_upstream_request_failures_total",
                        source="lenses",
                        endpoint="environments",
                        reason="http_401",
                    )
                    or 0
                ) >= 3

            await eventually(failed_twice, what="several failed polls")
            assert await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 0
            token_file.write_text(TOKEN + "\n")

            async def up() -> bool:
                return await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 1

            await eventually(up, what="recovery once the token file is fixed")
    failures = [e for e in logs if e["event"] == "sync_failed" and e.get("source") == "lenses"]
    assert len(failures) == 1, failures
    assert failures[0]["status"] == 401 and failures[0]["request_id"]
    assert "wrong-token" not in json.dumps(logs, default=str)


async def test_changes_are_brought_up_to_date_between_scrapes(simulator: Simulator) -> None:
    """The store's cached pieces catch up with a stream update in the background, before any scrape."""
    async with running_exporter(lenses_settings(simulator)) as exporter:
        await eventually(lambda: connected(exporter), what="the live stream")
        store = exporter.exporter.store
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)

        async def settled() -> bool:
            return store.pending() == 0

        await eventually(settled, what="the first listing's pieces to be brought up to date")
        name = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        simulator.world.set_metrics(name, "other", num_issues=4242)

        async def updated_and_settled() -> bool:
            environment = sync._environments.get(name)
            return environment is not None and "4242" in repr(environment) and store.pending() == 0

        await eventually(updated_and_settled, what="the update held and its pieces up to date, unscraped")
        assert await exporter.value("lenses_environment_issues", environment=name) == 4242


async def test_a_relisting_keeps_the_objects_of_unchanged_environments() -> None:
    """Equal environments in a new listing are not swapped for the listing's copies, which would scatter
    long-lived objects over the memory the listing's transients leave behind."""
    async with (
        Simulator(simulator_options(sse_enabled=False)) as simulator,
        running_exporter(lenses_settings(simulator, poll_interval=0.2)) as exporter,
    ):
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)
        names = sorted(simulator.world.environments)
        await eventually(lambda: series_of(exporter, names[0]), what="a first listing")
        held = dict(sync._environments)
        changed = next(name for name in names if simulator.world.connected(name))
        simulator.world.set_metrics(changed, "other", num_issues=4343)

        async def relisted() -> bool:
            return await exporter.value("lenses_environment_issues", environment=changed) == 4343

        await eventually(relisted, what="a listing with the change")
        assert sync._environments[changed] is not held[changed]
        assert all(sync._environments[name] is held[name] for name in names if name != changed)


async def test_a_whole_listing_is_joined_into_its_pieces_as_it_is_applied() -> None:
    """A listing's per-object texts are joined into the store's pieces before its memory is settled: left
    waiting for the compactor's first pass, they pinned the memory of the objects allocated beside them."""
    async with (
        Simulator(simulator_options(sse_enabled=False)) as simulator,
        running_exporter(lenses_settings(simulator)) as exporter,
    ):
        service = exporter.exporter

        async def listed() -> bool:
            return not service.health.pending()

        await eventually(listed, what="the first listing applied")
        assert not service.store.join_changed(0), "texts of the listing still wait for their join"
        assert service.store.pending(), "deflating is the compactor's: it should still wait"
