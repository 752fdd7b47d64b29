"""Several HQs in one exporter, over real HTTP: two simulated HQs holding environments of the same names
keep their series apart by `target`, and one HQ going down touches nothing of the other's."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from exporter.config import Settings
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import lenses_settings, running_settings, simulator_options
from tests.lenses.test_lenses import SEED_ENVIRONMENT
from tests.support import LandingPage, eventually, parse_samples, promtool_check_metrics

HQS = ("hq-eu", "hq-us")


def _two_hq_settings(first: Simulator, second: Simulator, **overrides: object) -> Settings:
    targets = tuple(
        lenses_settings(simulator, name=name, **overrides)
        for name, simulator in zip(HQS, (first, second), strict=True)
    )
    return Settings(lenses=targets[0], lenses_targets=targets)


def _lenses_series(text: str, target: str | None = None) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for sample in parse_samples(text)
        if sample.name.startswith("lenses_environment_")
        and (target is None or sample.labels.get("target") == target)
    }


async def test_two_hqs_with_the_same_environment_names_keep_every_series_apart() -> None:
    async with (
        Simulator(simulator_options(environments=6)) as first,
        Simulator(simulator_options(environments=6)) as second,
    ):
        names = {environment["name"] for environment in first.world.environments.values()}
        assert names == {environment["name"] for environment in second.world.environments.values()}
        async with running_settings(_two_hq_settings(first, second)) as exporter:

            async def both_listed() -> bool:
                values = [await exporter.value("lenses_hq_exporter_objects", target=hq) for hq in HQS]
                return values == [6.0, 6.0]

            await eventually(both_listed, what="both HQs listed")
            text = await exporter.text()
        promtool_check_metrics(text)
        samples = [s for s in parse_samples(text) if s.name.startswith("lenses_environment_")]
        assert {s.labels["target"] for s in samples} == set(HQS)
        # Every series is distinct, and exactly half of them belong to each HQ.
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
        assert len(keys) == len(set(keys))
        per_target = Counter(s.labels["target"] for s in samples)
        assert per_target[HQS[0]] == per_target[HQS[1]] > 0
        for hq in HQS:
            info = {
                s.labels["environment"]
                for s in samples
                if s.name == "lenses_environment_info" and s.labels["target"] == hq
            }
            assert info == names, hq
        # Without `target` the two HQs' series would merge: the same environment names on both.
        without_target = {(name, tuple(kv for kv in labels if kv[0] != "target")) for name, labels in keys}
        assert len(without_target) == len(keys) // 2


async def test_one_hq_down_leaves_the_other_hqs_series_and_up_untouched() -> None:
    async with (
        Simulator(simulator_options(environments=5)) as first,
        Simulator(simulator_options(environments=5)) as second,
    ):
        async with running_settings(_two_hq_settings(first, second, poll_interval=0.2)) as exporter:

            async def both_up() -> bool:
                return [await exporter.value("lenses_hq_exporter_up", target=hq) for hq in HQS] == [1, 1]

            await eventually(both_up, what="both HQs up")
            before = await exporter.text()
            await first.stop()

            async def first_down() -> bool:
                return await exporter.value("lenses_hq_exporter_up", source="lenses", target=HQS[0]) == 0

            await eventually(first_down, what="the stopped HQ reported down")
            after = await exporter.text()
            assert await exporter.value("lenses_hq_exporter_up", source="lenses", target=HQS[1]) == 1
        assert _lenses_series(after, HQS[1]) == _lenses_series(before, HQS[1])
        # The HQ that went down keeps its last good series (its `up` says they are stale).
        assert _lenses_series(after, HQS[0]) == _lenses_series(before, HQS[0])


async def test_the_landing_page_lists_each_hq() -> None:
    async with (
        Simulator(simulator_options(environments=3)) as first,
        Simulator(simulator_options(environments=2)) as second,
        running_settings(_two_hq_settings(first, second)) as exporter,
    ):

        async def both_listed() -> bool:
            values = [await exporter.value("lenses_hq_exporter_objects", target=hq) for hq in HQS]
            return values == [3.0, 2.0]

        await eventually(both_listed, what="both HQs listed")
        page = LandingPage((await exporter.client.get(exporter.url + "/")).text)
    rows = {row["target"]: row for row in page.targets()}
    assert set(rows) == set(HQS)
    assert [rows[hq]["objects"] for hq in HQS] == ["3", "2"]
    assert all(rows[hq]["source"] == "lenses" for hq in HQS)


async def test_each_hq_keeps_its_own_round_trip_unit_and_metadata_allowlist() -> None:
    seed = copy.deepcopy(SEED_ENVIRONMENT)
    seed["status"]["agent"]["roundtrip_duration"] = 250
    seed["metadata"] = {"team": "payments", "region": "eu-west-1"}
    async with (
        Simulator(simulator_options(environments=0)) as first,
        Simulator(simulator_options(environments=0)) as second,
    ):
        for simulator in (first, second):
            simulator.world.put_raw_environment(copy.deepcopy(seed))
        hqs = (
            lenses_settings(
                first, name=HQS[0], sse=False, roundtrip_duration_unit="ms", metadata_labels=("team",)
            ),
            lenses_settings(second, name=HQS[1], sse=False, metadata_labels=("region",)),
        )
        async with running_settings(Settings(lenses=hqs[0], lenses_targets=hqs)) as exporter:

            async def both() -> bool:
                values = [
                    await exporter.value("lenses_environment_agent_roundtrip_seconds", target=hq)
                    for hq in HQS
                ]
                return None not in values

            await eventually(both, what="both HQs' round trips")
            text = await exporter.text()
    promtool_check_metrics(text)
    samples = parse_samples(text)
    roundtrip = {
        s.labels["target"]: s.value for s in samples if s.name == "lenses_environment_agent_roundtrip_seconds"
    }
    assert roundtrip == {HQS[0]: 0.25, HQS[1]: pytest.approx(250e-9)}
    metadata = {
        s.labels["target"]: (s.labels["metadata_team"], s.labels["metadata_region"])
        for s in samples
        if s.name == "lenses_environment_metadata_info"
    }
    # The family has both HQs' keys; each HQ fills only the keys it allows.
    assert metadata == {HQS[0]: ("payments", ""), HQS[1]: ("", "eu-west-1")}
