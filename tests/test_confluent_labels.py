"""Flink agents' `metadata.labels` on an allowlist per target: `confluent_flink_agent_labels_info` over real
HTTP, with a label for every allowed key (empty when the agent has none) and nothing for the rest."""

from __future__ import annotations

from exporter.config import ConfluentSettings, Settings
from exporter.simulator.server import Simulator
from tests.lenses_fixtures import running_settings, simulator_options
from tests.support import eventually, promtool_check_metrics
from tests.test_filters import confluent_target


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
