"""Confluent parity over real HTTP: agents' `metadata.labels` on an allowlist per target
(`confluent_flink_agent_labels_info`, a label for every allowed key, empty when the agent has none, nothing
for the rest), and the rate-limit budget read from every answer."""

from __future__ import annotations

from exporter.config import ConfluentSettings, Settings
from exporter.simulator.server import Simulator
from tests.config.test_filters import confluent_target
from tests.lenses.lenses_fixtures import running_settings, simulator_options
from tests.support import eventually, promtool_check_metrics


async def test_allowed_agent_labels_become_label_series() -> None:
    async with Simulator(simulator_options(environments=0, agents=6)) as simulator:
        settings = Settings(
            confluent=ConfluentSettings((confluent_target(simulator, labels=("team", "owner")),))
        )
        async with running_settings(settings) as exporter:

            async def labelled() -> list[dict[str, str]]:
                return [
                    s.labels
                    for s in await exporter.samples()
                    if s.name == "confluent_flink_agent_labels_info"
                ]

            found = await eventually(labelled, what="labels_info series")
            agents = {
                s.labels["agent"] for s in await exporter.samples() if s.name == "confluent_flink_agent_info"
            }
            promtool_check_metrics(await exporter.text())
    assert {labels["agent"] for labels in found} == agents
    for labels in found:
        assert labels["label_team"] and labels["label_owner"] == ""
        assert not {key for key in labels if key.startswith("label_")} - {"label_team", "label_owner"}


async def test_no_allowlist_no_labels_family() -> None:
    async with Simulator(simulator_options(environments=0, agents=3)) as simulator:
        settings = Settings(confluent=ConfluentSettings((confluent_target(simulator),)))
        async with running_settings(settings) as exporter:
            await eventually(
                lambda: exporter.value("confluent_flink_agent_info", agent=agent_name(simulator))
            )
            assert "confluent_flink_agent_labels_info" not in await exporter.text()


def agent_name(simulator: Simulator) -> str:
    world = simulator.world
    (first, *_) = world.agents(world.confluent_environment_ids[0])
    return str(first["name"])


async def test_the_rate_limit_budget_is_read_from_every_answer() -> None:
    async with Simulator(simulator_options(environments=0, agents=3)) as simulator:
        simulator.faults.rate_limit_capacity = 50.0
        simulator.faults.rate_limit_per_second = 0.001  # no refill to speak of: each request spends one
        target = confluent_target(simulator, page_size=1)
        async with running_settings(Settings(confluent=ConfluentSettings((target,)))) as exporter:

            async def budget() -> tuple[float | None, float | None]:
                return (
                    await exporter.value("lenses_hq_exporter_rate_limit_limit", target="flink"),
                    await exporter.value("lenses_hq_exporter_rate_limit_remaining", target="flink"),
                )

            async def listed() -> bool:
                return await exporter.value("lenses_hq_exporter_up", target="flink") == 1

            await eventually(listed, what="the listing complete")
            limit, remaining = await budget()
            pages = len(simulator.world.agents(simulator.world.confluent_environment_ids[0]))
    # The listing's pages were all answered 200, each spending one request of the budget.
    assert limit == 50
    assert remaining == 50 - pages
