"""Matrix rows of schema drift: one environment and one agent turn hostile (nulls, wrong types, missing
blocks, huge numbers, negative values). The sources stay up, only the affected series change, every other
object keeps its series, and putting the object back restores its series within one poll interval."""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import RECOVERY_DEADLINE, SOURCES, Rig, State, rig

Series = frozenset[tuple[str, tuple[tuple[str, str], ...], str]]


def leaves(value: Any, change: Callable[[Any], Any], keep: frozenset[str] = frozenset({"name"})) -> Any:
    """A copy with every scalar leaf changed (top-level keys in `keep` left alone)."""

    def walk(node: Any, top: bool) -> Any:
        if isinstance(node, dict):
            return {k: (v if top and k in keep else walk(v, False)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(item, False) for item in node]
        return change(node)

    return walk(value, True)


def nulls(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: (value if key == "name" else None) for key, value in obj.items()}


def wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 12345
    return value


def missing_blocks(obj: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    agent = result.get("status", {}).get("agent")
    if isinstance(agent, dict):
        agent.pop("metrics", None)
        agent.pop("agent", None)
    result.pop("spec", None)
    result.get("metadata", {}).pop("self", None)
    if "phase" in result.get("status", {}):
        result.pop("status")
    return result


HUGE = itertools.cycle((10**30, 2**64 + 1, 1.7e308))


def huge(value: Any) -> Any:
    return next(HUGE) if isinstance(value, int | float) and not isinstance(value, bool) else value


def negative(value: Any) -> Any:
    return -abs(value) - 1 if isinstance(value, int | float) and not isinstance(value, bool) else value


def with_timestamps(obj: dict[str, Any], created: Any, updated: Any) -> dict[str, Any]:
    """An agent has no numeric fields: its numbers go where its timestamps were."""
    result = copy.deepcopy(obj)
    if isinstance(result.get("metadata"), dict) and "status" in result and "spec" in result:
        result["metadata"].update(created_at=created, updated_at=updated)
    return result


ROWS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "drift-nulls": nulls,
    "drift-wrong-types": lambda obj: leaves(obj, wrong_type),
    "drift-missing-blocks": missing_blocks,
    "drift-huge-numbers": lambda obj: with_timestamps(leaves(obj, huge), 10**30, 1.7e308),
    "drift-negative": lambda obj: with_timestamps(leaves(obj, negative), -1, -1.5),
}


def of(series: Series, label: str, name: str) -> Series:
    return frozenset(s for s in series if dict(s[1]).get(label) == name)


def values(series: Series) -> list[float]:
    return [float(value) for _, _, value in series]


def check_row(row: str, source: str, before: Series, after: Series) -> str:
    """What the drifted object's series show; asserts what the row expects."""
    info = "lenses_environment_info" if source == "lenses" else "confluent_flink_agent_info"
    assert any(name == info for name, _, _ in after), f"{source}: the object lost its info series"
    numbers = [v for v in values(after) if v not in (0.0, 1.0)]
    if row == "drift-huge-numbers":
        shown = sorted({v for v in numbers if v >= 1e18})
        if source == "lenses":
            assert shown, "huge numbers were not exported"
        exported = ", ".join(f"{v:g}" for v in shown) or "none (no numeric fields)"
        return f"{len(after)} of {len(before)} series; huge values exported: {exported}"
    if row == "drift-negative":
        shown = sorted(v for v in numbers if v < 0)
        assert not shown, f"{source}: negative values exported: {shown}"
        if source == "lenses":
            assert len(after) < len(before), "no negative count was dropped"
        return f"{len(after)} of {len(before)} series; negative counts and times dropped, none exported"
    assert len(after) < len(before), f"{source}: {row} dropped no series"
    return f"{len(after)} of {len(before)} series left (the rest dropped)"


@pytest.mark.parametrize("row", list(ROWS))
async def test_schema_drift(reliability: Collector, row: str) -> None:
    async with rig() as running:
        baseline = await running.healthy()
        world = running.sim.world
        environment_id = world.confluent_environment_ids[0]
        environment = sorted(running.world_names("lenses"))[0]
        agent = sorted(running.world_names("confluent"))[0]
        original_environment = world.environment(environment)
        original_agent = world.agent(environment_id, agent)
        label = {"lenses": ("environment", environment), "confluent": ("agent", agent)}
        invalid_before = await invalid_objects(running)

        drift = ROWS[row]
        started = time.monotonic()
        world.put_raw_environment(drift(copy.deepcopy(original_environment)))
        world.put_raw_agent(environment_id, drift(copy.deepcopy(original_agent)))

        def drifted(source: str) -> Callable[[State], bool]:
            return lambda state: (
                of(state.data[source], *label[source]) != of(baseline.data[source], *label[source])
            )

        shown: dict[str, float] = {}
        for source in SOURCES:
            shown[source], _ = await running.until(
                drifted(source), deadline=RECOVERY_DEADLINE + 1, what=f"{source} drift shown"
            )
        polled_at = time.time()
        # A whole poll after the drift: both sources still up, having listed the drifted objects.
        _, state = await running.until(
            lambda s: all(s.last_success[x] > polled_at and s.up[x] == 1 for x in SOURCES),
            deadline=RECOVERY_DEADLINE + 1,
            what="a successful poll of the drifted objects",
        )
        assert state.sse_connected == 1
        assert await invalid_objects(running) == invalid_before, "a drifted object was dropped whole"
        outcomes = {}
        for source in SOURCES:
            name_label, name = label[source]
            assert state.data[source] - of(state.data[source], name_label, name) == baseline.data[
                source
            ] - of(baseline.data[source], name_label, name), f"{source}: other objects' series changed"
            outcomes[source] = check_row(
                row,
                source,
                of(baseline.data[source], name_label, name),
                of(state.data[source], name_label, name),
            )

        world.put_raw_environment(original_environment)
        world.put_raw_agent(environment_id, original_agent)
        cleared = time.monotonic()
        restored: dict[str, float] = {}
        for source in SOURCES:
            await running.until(
                lambda s, source=source: s.data[source] == baseline.data[source],
                deadline=RECOVERY_DEADLINE,
                what=f"{source} series restored",
            )
            restored[source] = time.monotonic() - cleared
        for source in SOURCES:
            how = "via the stream" if source == "lenses" else "at the next poll"
            reliability.record(
                Outcome(
                    row,
                    source,
                    f"{seconds(shown[source])} ({how})",
                    seconds(restored[source]),
                    "up 1, no object dropped whole" + ("; stream connected" if source == "lenses" else ""),
                    outcomes[source] + "; other objects unchanged",
                )
            )
        del started


async def invalid_objects(running: Rig) -> float:
    state = await running.state()
    return sum(s.value for s in state.samples if s.name == "lenses_hq_exporter_invalid_objects_total")
