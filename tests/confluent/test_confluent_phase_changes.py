"""Flink agents' phase changes between two polls, counted, against the simulator over real HTTP."""

from __future__ import annotations

from tests.confluent.test_confluent_sync import Running, exporter, simulator, synced, target_for
from tests.support import eventually, promtool_check_metrics

CHANGES = "confluent_flink_agent_phase_changes_total"


async def test_phase_changes_between_polls_are_counted_from_zero() -> None:
    async with simulator() as sim:
        target = target_for(sim, poll_interval=3600.0)
        world = sim.world
        world.add_agent(target.environment_id, "mover", phase="READY")
        world.add_agent(target.environment_id, "steady", phase="RUNNING")
        async with exporter(target) as running:
            await synced(running, target)
            assert await running.value(CHANGES, agent="mover") == 0
            world.set_agent_phase(target.environment_id, "mover", "RUNNING")
            assert await running.sync.poll(target)
            assert await running.value(CHANGES, agent="mover") == 1
            assert await running.sync.poll(target)  # the same phase again is no change
            assert await running.value(CHANGES, agent="mover") == 1
            world.set_agent_phase(target.environment_id, "mover", "DEGRADED")
            assert await running.sync.poll(target)
            assert await running.value(CHANGES, agent="mover") == 2
            assert await running.value(CHANGES, agent="steady") == 0
            assert promtool_check_metrics(await running.text()) == ""


async def test_the_counter_goes_with_the_agent_and_restarts_when_it_returns() -> None:
    async with simulator() as sim:
        target = target_for(sim, poll_interval=3600.0)
        world = sim.world
        world.add_agent(target.environment_id, "mover", phase="READY")
        async with exporter(target) as running:
            await synced(running, target)
            world.set_agent_phase(target.environment_id, "mover", "RUNNING")
            assert await running.sync.poll(target)
            assert await running.value(CHANGES, agent="mover") == 1
            world.delete_agent(target.environment_id, "mover")
            assert await running.sync.poll(target)
            assert await running.value(CHANGES, agent="mover") is None
            world.add_agent(target.environment_id, "mover", phase="RUNNING")
            assert await running.sync.poll(target)
            await eventually(lambda: _is(running, 0), what="the agent back at 0")


async def _is(running: Running, value: float) -> bool:
    return await running.value(CHANGES, agent="mover") == value
