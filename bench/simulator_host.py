"""The simulator in its own process, every environment with a connected agent and every metrics block
filled, its generation timed. Rates are changed through the simulator's own `/_admin/faults`."""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import (
    CONFLUENT_API_KEY,
    CONFLUENT_API_SECRET,
    LENSES_TOKEN,
    announce,
    until_terminated,
)
from exporter.simulator.server import Simulator, SimulatorOptions

SAMPLE_NAMES = 64


async def serve(environments: int, agents: int, seed: int, confluent_environments: int) -> None:
    """Generate the world, fill it, serve it until SIGTERM."""
    started, started_cpu = time.perf_counter(), time.process_time()
    options = SimulatorOptions(
        environments=environments,
        agents=agents,
        seed=seed,
        lenses_token=LENSES_TOKEN,
        confluent_api_key=CONFLUENT_API_KEY,
        confluent_api_secret=CONFLUENT_API_SECRET,
        confluent_environments=confluent_environments,
        churn=False,
        updates_per_second=0.0,
    )
    simulator = Simulator(options, "127.0.0.1", 0)
    world = simulator.world
    # The simulator leaves one agent in eight disconnected; the benchmark wants every block filled.
    for name in list(world.environments):
        if not world.connected(name):
            world.connect_agent(name)
    world.environment_list_bytes()
    generated, generated_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    async with simulator:
        announce(
            url=simulator.url,
            lenses_url=simulator.lenses_url,
            organization_id=world.organization_id,
            confluent_environment_ids=world.confluent_environment_ids,
            environments=len(world.environments),
            agents=world.agent_count(),
            generate_seconds=generated,
            generate_cpu_seconds=generated_cpu,
            list_bytes=len(world.environment_list_bytes()),
            names=list(world.environments)[:: max(1, len(world.environments) // SAMPLE_NAMES)][:SAMPLE_NAMES],
        )
        await until_terminated()


def main() -> None:
    """`python -m bench.simulator_host --environments E --agents A`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environments", type=int, required=True)
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--confluent-environments", type=int, default=2)
    arguments = parser.parse_args()
    asyncio.run(
        serve(arguments.environments, arguments.agents, arguments.seed, arguments.confluent_environments)
    )


if __name__ == "__main__":
    main()
