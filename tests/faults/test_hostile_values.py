"""Matrix rows of hostile values: upstream names that differ only in what UTF-8 cannot carry, label values
and fan-out without bound, and a credential file rewritten with characters no HTTP header can carry."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from exporter.config.secrets import Secret
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import API_SECRET, LENSES_TOKEN, RECOVERY_DEADLINE, SOURCES, Rig, State, rig
from tests.faults.test_hostile_bodies import current

MANY = 20_000
MAX_LABEL_BYTES = 1024


def colliding_environments() -> list[dict[str, Any]]:
    return [{"name": name, "tier": "development"} for name in ("sur\ud800", "sur\udc00", "sur?")]


def colliding_agents() -> list[dict[str, Any]]:
    return [{"name": name, "spec": {"model": "m"}} for name in ("ag\ud800", "ag\udc00", "ag?")]


def unbounded_environment() -> dict[str, Any]:
    return {
        "name": "n" * 100_000,
        "tier": "development",
        "status": {
            "agent_connected": True,
            "agent": {"agent": {"capabilities": {f"capability{index}": True for index in range(MANY)}}},
        },
        "metadata": {f"key{index}": "v" for index in range(MANY)},
    }


def unbounded_agent() -> dict[str, Any]:
    return {"name": "unbounded", "spec": {"model": "m" * 100_000, "tools": [f"t{i}" for i in range(MANY)]}}


def series_counts(state: State) -> collections.Counter[tuple[str, tuple[tuple[str, str], ...]]]:
    return collections.Counter((s.name, tuple(sorted(s.labels.items()))) for s in state.samples)


async def openmetrics_ok(running: Rig) -> bool:
    response = await running.http.get(
        running.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    return bool([family for family in openmetrics_families(response.text)])


def fields(state: State, source: str) -> set[str]:
    return {
        s.labels["field"]
        for s in state.samples
        if s.name == "lenses_hq_exporter_invalid_fields_total" and s.labels["source"] == source and s.value
    }


async def test_names_that_collide_once_encoded(reliability: Collector) -> None:
    async with rig(lenses={"sse": False}) as running:
        baseline = await current(running)
        world = running.sim.world
        environment_id = world.confluent_environment_ids[0]
        started = time.time()
        for environment in colliding_environments():
            world.put_raw_environment(environment)
        for agent in colliding_agents():
            world.put_raw_agent(environment_id, agent)
        wanted = {"lenses": {"sur\ufffd", "sur?"}, "confluent": {"ag\ufffd", "ag?"}}
        shown, state = await running.until(
            lambda s: all(
                s.last_success[x] > started and s.up[x] == 1 and wanted[x] <= s.names(x) for x in SOURCES
            ),
            deadline=RECOVERY_DEADLINE + 1,
            what="the colliding names listed",
        )
        assert [series for series, count in series_counts(state).items() if count > 1] == []
        assert await openmetrics_ok(running), "the OpenMetrics parser refused the exposition"
        for source in SOURCES:
            assert state.names(source) == baseline.names(source) | wanted[source]
            reliability.record(
                Outcome(
                    "names-colliding",
                    source,
                    f"{seconds(shown)} (listing applied)",
                    "-",
                    "up 1; the exposition parses as text and as OpenMetrics",
                    "one series per label set: the first of the names that read the same kept, "
                    "the other dropped and counted",
                )
            )


async def test_unbounded_labels_and_fan_out(reliability: Collector) -> None:
    async with rig(lenses={"sse": False, "metadata_labels": ("team",)}) as running:
        await current(running)
        world = running.sim.world
        started = time.time()
        world.put_raw_environment(unbounded_environment())
        world.put_raw_agent(world.confluent_environment_ids[0], unbounded_agent())
        shown, state = await running.until(
            lambda s: (
                all(s.last_success[x] > started and s.up[x] == 1 for x in SOURCES)
                and "unbounded" in s.names("confluent")
                and any(name.startswith("nnn") for name in s.names("lenses"))
            ),
            deadline=RECOVERY_DEADLINE + 3,
            what="the unbounded objects listed",
        )
        for sample in state.samples:
            for value in sample.labels.values():
                assert len(value.encode()) <= MAX_LABEL_BYTES
        capabilities = [s for s in state.samples if s.name == "lenses_environment_agent_capability"]
        tools = [s for s in state.samples if s.name == "confluent_flink_agent_tool_info"]
        assert len(capabilities) <= 64 * len(running.world_names("lenses"))
        assert len([s for s in tools if s.labels["agent"] == "unbounded"]) <= 128
        cut = {"lenses": fields(state, "lenses"), "confluent": fields(state, "confluent")}
        assert {"name", "capabilities"} <= cut["lenses"]
        assert {"model", "tools"} <= cut["confluent"]
        response = await running.http.get(running.url + "/metrics")
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "labels-unbounded",
                    source,
                    f"{seconds(shown)} (listing applied)",
                    "-",
                    f"up 1; exposition {len(response.content) // 1024} KiB",
                    f"values cut at 1 KiB, fan-out capped; counted: {', '.join(sorted(cut[source]))}",
                )
            )


async def test_a_credential_file_rewritten_with_non_ascii(reliability: Collector, tmp_path: Path) -> None:
    token, secret = tmp_path / "token", tmp_path / "secret"
    token.write_text(LENSES_TOKEN)
    secret.write_text(API_SECRET)
    async with rig(
        lenses={"token": Secret(file=token), "sse": False}, confluent={"api_secret": Secret(file=secret)}
    ) as running:
        await current(running)
        token.write_text("tøken", encoding="utf-8")
        secret.write_text("sécret", encoding="utf-8")
        detected, _ = await running.until(
            lambda s: all(s.up[x] == 0 for x in SOURCES), deadline=RECOVERY_DEADLINE + 3, what="both down"
        )
        landing = await running.landing()
        token.write_text("\ufeff" + LENSES_TOKEN + "\n")
        secret.write_text(API_SECRET + "  \n")
        fixed = time.time()
        recovered, _ = await running.until(
            lambda s: all(s.up[x] == 1 and s.last_success[x] > fixed for x in SOURCES),
            deadline=RECOVERY_DEADLINE + 3,
            what="both up once the files are fixed (BOM and whitespace stripped)",
        )
        for source in SOURCES:
            error = landing[source].last_error
            assert "holds characters a credential cannot have" in error, error
            assert "tøken" not in error and "sécret" not in error
            reliability.record(
                Outcome(
                    "credential-file-non-ascii",
                    source,
                    seconds(detected),
                    seconds(recovered),
                    f"up 0; {error.replace(str(tmp_path), '<dir>')!r}",
                    "kept",
                )
            )
