"""A stream `snapshot` larger than the event cap: decoded one environment at a time, each environment capped
on its own, so a fleet whose whole list exceeds the cap is still applied from the stream."""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection
from typing import Any

import pytest

from exporter import decode
from exporter.config import LensesSettings
from exporter.config.secrets import Secret
from exporter.exposition.families import Family, FamilyGroup
from exporter.lenses import intake
from exporter.lenses.metrics import COMMON_LABELS
from exporter.lenses.model import Environment, decode_environment
from exporter.lenses.recognition import Recognition
from exporter.lenses.rendering import EnvironmentRenderer
from exporter.lenses.snapshot import OVERSIZE_REASON, ItemStream
from exporter.lenses.sync import LensesSync
from exporter.simulator.faults import ScriptedResponse
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import RunningExporter, lenses_settings, running_exporter, simulator_options
from tests.support import eventually

CAP = 64 * 1024
"""The event cap of these tests: a few dozen environments' worth."""


async def stream_events(exporter: RunningExporter, event: str) -> float:
    return await exporter.value("lenses_hq_exporter_sse_events_total", target="hq", event=event) or 0.0


async def exported(exporter: RunningExporter) -> set[str]:
    return {s.labels["environment"] for s in await exporter.samples() if s.name == "lenses_environment_info"}


def listing_always_fails(simulator: Simulator) -> None:
    """Every listing answers 500: what the exporter holds can only come from the stream."""
    simulator.faults.scripts.append(
        ScriptedResponse(500, api="lenses", method="GET", path="/v1/environments", count=None)
    )


async def test_a_snapshot_larger_than_the_event_cap_is_applied() -> None:
    async with Simulator(simulator_options(environments=300)) as simulator:
        assert len(simulator.world.environment_list_bytes()) > 4 * CAP
        listing_always_fails(simulator)
        async with running_exporter(lenses_settings(simulator, sse_max_event_bytes=CAP)) as exporter:

            async def applied() -> bool:
                return await stream_events(exporter, "snapshot") == 1

            await eventually(applied, what="the snapshot counted")
            assert await exported(exporter) == set(simulator.world.environments)
            assert await stream_events(exporter, "oversize") == 0
            assert await stream_events(exporter, "invalid") == 0


async def test_one_environment_over_the_cap_drops_only_that_environment() -> None:
    async with Simulator(simulator_options(environments=50)) as simulator:
        huge = json.loads(simulator.world.environment_bytes(sorted(simulator.world.environments)[0]))
        huge["name"] = "huge"
        huge["metadata"] = {"padding": "x" * (2 * CAP)}
        simulator.world.put_raw_environment(huge)
        listing_always_fails(simulator)
        async with running_exporter(lenses_settings(simulator, sse_max_event_bytes=CAP)) as exporter:

            async def applied() -> bool:
                return await stream_events(exporter, "snapshot") == 1

            await eventually(applied, what="the snapshot counted")
            assert await exported(exporter) == set(simulator.world.environments) - {"huge"}
            assert await stream_events(exporter, "oversize") == 0
            dropped = await exporter.value(
                "lenses_hq_exporter_invalid_objects_total", source="lenses", target="hq"
            )
            assert dropped == 1


# ----- the items decoded as the data arrives ---------------------------------------------------------------


def streamed(text: str, cap: int, cuts: list[int]) -> tuple[list[str], str]:
    """The items (as their `repr`) and the error (empty when none) of `text` fed cut at `cuts`."""
    stream = ItemStream("items", cap)
    items: list[Any] = []
    for start, end in itertools.pairwise([0, *cuts, len(text)]):
        stream.feed(text[start:end])
        items += stream.take()
    try:
        stream.finish()
    except decode.InvalidJSON as error:
        return [repr(item) for item in items + stream.take()], str(error)
    return [repr(item) for item in items + stream.take()], ""


def every_cut(text: str, cap: int) -> tuple[list[str], str]:
    """The outcome of `text` fed whole, checked to be the same fed in two pieces cut anywhere, and one
    character at a time."""
    whole = streamed(text, cap, [])
    for cut in range(len(text) + 1):
        assert streamed(text, cap, [cut]) == whole, cut
    assert streamed(text, cap, list(range(1, len(text)))) == whole
    return whole


TRICKY = (
    '{"before": {"items": [1]}, "items": [ {"name": "a]\\"},{"}, 12.5e3 ,"x", [[], {}], null, true,'
    ' {"name": "\\u00e9\\\\"} ], "after": [1, 2] }'
)


def test_items_are_those_a_whole_listing_gives_however_the_data_is_cut() -> None:
    listed = decode.listing(TRICKY, "items")
    expected = [repr(item) for item in listed]
    assert every_cut(TRICKY, 1024) == (expected, "")
    assert listed.fields == {"before": {"items": [1]}, "after": [1, 2]}


def test_an_item_over_the_cap_stands_alone_as_undecodable() -> None:
    big = '{"name": "big", "padding": "' + "x" * 100 + '", "nested": [{"]": "}"}]}'
    text = '{"items": [{"name": "a"}, ' + big + ', {"name": "b"}]}'
    items, error = every_cut(text, 64)
    assert error == ""
    assert items == ["{'name': 'a'}", repr(decode.Undecodable(OVERSIZE_REASON)), "{'name': 'b'}"]


def test_an_item_that_is_not_json_is_undecodable_and_the_others_decode() -> None:
    text = '{"items": [{"name": "a"}, {"name": nope}, {"name": "b"}]}'
    items, error = every_cut(text, 1024)
    assert (items, error) == (["{'name': 'a'}", "Undecodable('not valid JSON')", "{'name': 'b'}"], "")


def test_an_empty_list_has_no_items_and_a_broken_structure_fails_the_whole() -> None:
    assert every_cut('{"items": []}', 1024) == ([], "")
    # As in a listing: the missing item after a trailing comma is one that cannot be decoded.
    assert every_cut('{"items": [1,]}', 1024) == (["1", "Undecodable('not valid JSON')"], "")
    for broken in (
        '{"items": [1 2]}',
        '{"items": [1]',
        '{"items": [1]} trailing',
        '{"other": 1}',
        "[1, 2]",
        '{"items": [{"cut": "short',
    ):
        assert every_cut(broken, 1024)[1], broken


# ----- a listing and a snapshot prepared together ----------------------------------------------------------


def test_listings_prepared_together_render_an_equal_environment_once() -> None:
    renders = []

    def read(environment: Environment) -> list[tuple[tuple[str, ...], float]]:
        renders.append(environment.name)
        return [((), 1.0)]

    group = FamilyGroup(COMMON_LABELS, (Family("lenses_test", "Test.", (), read),))
    renderer = EnvironmentRenderer(LensesSettings(name="hq", url="http://hq", token=Secret("t")), group)
    listed = decode_environment({"name": "a", "tier": "production"})
    with renderer.preparing():
        first = renderer.prepare(listed)
        with renderer.preparing():  # the snapshot, while the listing is still prepared
            assert renderer.prepare(decode_environment({"name": "a", "tier": "production"})) is first
            changed = renderer.prepare(decode_environment({"name": "a", "tier": "staging"}))
            assert changed is not first
    assert renders == ["a", "a"]
    with renderer.preparing():  # nothing kept once no listing is prepared
        renderer.prepare(listed)
    assert renders == ["a", "a", "a"]


# ----- items recognised by their text ----------------------------------------------------------------------


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the environments decoded from JSON (the real decoder, counted)."""
    names: list[str] = []
    decode_environment = intake.decode_environment

    def counted(raw: Any, metadata_keys: Collection[str] = ()) -> Environment:
        environment = decode_environment(raw, metadata_keys)
        names.append(environment.name)
        return environment

    monkeypatch.setattr(intake, "decode_environment", counted)
    return names


async def test_a_relisting_decodes_only_the_environments_whose_text_changed(decoded: list[str]) -> None:
    async with (
        Simulator(simulator_options(environments=30, sse_enabled=False)) as simulator,
        running_exporter(lenses_settings(simulator, sse=False)) as exporter,
    ):
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)
        await eventually(lambda: exported(exporter), what="a first listing")
        assert sorted(decoded) == sorted(simulator.world.environments)
        changed = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        simulator.world.set_metrics(changed, "other", num_issues=4545)
        decoded.clear()
        assert await sync.sync_once()
        assert decoded == [changed]
        assert await exporter.value("lenses_environment_issues", environment=changed) == 4545
        decoded.clear()
        assert await sync.sync_once()
        assert decoded == []
        assert await exported(exporter) == set(simulator.world.environments)


async def test_a_reconnect_snapshot_decodes_only_what_changed(decoded: list[str]) -> None:
    async with (
        Simulator(simulator_options(environments=30)) as simulator,
        running_exporter(lenses_settings(simulator, sse_max_event_bytes=CAP)) as exporter,
    ):

        async def snapshots(count: int) -> bool:
            return await stream_events(exporter, "snapshot") == count

        await eventually(lambda: snapshots(1), what="the first snapshot")
        await eventually(lambda: exported(exporter), what="a first listing")
        changed = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        decoded.clear()
        simulator.faults.sse_cut_next = True  # the update is cut off: the stream reconnects
        simulator.world.set_metrics(changed, "other", num_issues=4646)
        await eventually(lambda: snapshots(2), what="the snapshot after reconnecting")
        assert await exporter.value("lenses_environment_issues", environment=changed) == 4646
        assert set(decoded) <= {changed}


def test_an_environment_the_stream_changed_is_never_recognised_by_its_old_text() -> None:
    old = '{"name": "a", "tier": "production"}'
    held: dict[str, Environment] = {}
    recognition = Recognition(held.get)
    listing = recognition.start()
    fresh = listing.fresh(json.loads(old), old)
    held["a"] = decode_environment(fresh.raw)
    listing.seen_as("a", fresh.fingerprint)
    listing.finish()
    recognition.applied(held.keys(), listing.seen, ())
    text = f'{{"items": [{old}]}}'
    found = recognition.start().recognise(text, len('{"items": ['))
    assert found is not None and found[0].environment is held["a"]
    held["a"] = decode_environment({"name": "a", "tier": "staging"})  # an update on the stream
    recognition.forget("a")
    assert recognition.start().recognise(text, len('{"items": [')) is None


async def test_a_relisting_after_a_stream_update_recognises_the_text_the_stream_sent(
    decoded: list[str],
) -> None:
    # HQ lists an environment with the text its last `environment_updated` carried: the listing that
    # follows decodes nothing the stream already brought.
    async with (
        Simulator(simulator_options(environments=30)) as simulator,
        running_exporter(lenses_settings(simulator)) as exporter,
    ):
        sync = exporter.exporter.sources[0]
        assert isinstance(sync, LensesSync)
        await eventually(lambda: exported(exporter), what="a first listing")
        assert await sync.sync_once()
        changed = next(n for n in sorted(simulator.world.environments) if simulator.world.connected(n))
        decoded.clear()
        simulator.world.set_metrics(changed, "other", num_issues=4747)

        async def streamed() -> bool:
            return await exporter.value("lenses_environment_issues", environment=changed) == 4747

        await eventually(streamed, what="the update on the stream")
        assert decoded == [changed]
        decoded.clear()
        assert await sync.sync_once()
        assert decoded == []
        assert await exporter.value("lenses_environment_issues", environment=changed) == 4747
