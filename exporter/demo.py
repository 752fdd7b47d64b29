"""`lenses-hq-exporter demo`: the bundled simulator and the exporter wired to it, in one process."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.arguments import PROG
from exporter.cli import announce, serve
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    Settings,
    WebSettings,
    normal_log_level,
    split_listen_address,
)
from exporter.config.secrets import Secret
from exporter.healthcheck import address_file_from, remove_address_file
from exporter.logs import configure_logging

if TYPE_CHECKING:
    from exporter.service import Exporter
    from exporter.simulator.options import SimulatorOptions

DEMO_ENVIRONMENTS = 36
DEMO_AGENTS = 30
DEMO_CONFLUENT_ENVIRONMENTS = 2
DEMO_TIERS = ("production", "staging")


def demo_settings(
    simulator_url: str,
    organization_id: str,
    confluent_environment_ids: Sequence[str],
    options: SimulatorOptions,
    listen_addresses: Sequence[str],
    log_level: str,
    log_format: str,
) -> Settings:
    """The exporter wired to a simulator: its Lenses HQ and one Confluent target per environment it serves,
    with the simulator's (fake) credentials. Short intervals, so that changes show within seconds."""
    lenses = LensesSettings(
        name="demo-hq",
        url=f"{simulator_url}/api",
        token=Secret(value=options.lenses_token, origin="the simulator"),
        poll_interval=15.0,
    )
    targets = tuple(
        ConfluentTarget(
            name=environment_id,
            url=simulator_url,
            organization_id=organization_id,
            environment_id=environment_id,
            api_key=Secret(value=options.confluent_api_key, origin="the simulator"),
            api_secret=Secret(value=options.confluent_api_secret, origin="the simulator"),
            tier=DEMO_TIERS[index % len(DEMO_TIERS)],
            poll_interval=10.0,
        )
        for index, environment_id in enumerate(confluent_environment_ids)
    )
    return Settings(
        web=WebSettings(
            listen_address=listen_addresses[0], additional_listen_addresses=tuple(listen_addresses[1:])
        ),
        lenses=lenses,
        confluent=ConfluentSettings(targets),
        log_level=log_level,
        log_format=log_format,
        source="demo",
    )


def browse_url(listen_address: str, port: int) -> str:
    """A URL a browser on this machine can open for a listen address (`:9877` → http://localhost:9877)."""
    host, _ = split_listen_address(listen_address)
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def run_demo(
    listen_addresses: Sequence[str], log_level: str, log_format: str, address_file: Path | None = None
) -> None:
    """Simulator and exporter in this process, until SIGTERM/SIGINT."""
    from exporter.service import run_until_signal
    from exporter.simulator.options import SimulatorOptions
    from exporter.simulator.server import Simulator

    options = SimulatorOptions(
        environments=DEMO_ENVIRONMENTS,
        agents=DEMO_AGENTS,
        confluent_environments=DEMO_CONFLUENT_ENVIRONMENTS,
        churn=True,
    )
    async with Simulator(options, host="127.0.0.1", port=0) as simulator:
        world = simulator.world
        settings = demo_settings(
            simulator.url,
            world.organization_id,
            world.confluent_environment_ids,
            options,
            listen_addresses,
            log_level,
            log_format,
        )

        def started(exporter: Exporter) -> None:
            announce(address_file)(exporter)
            base = browse_url(listen_addresses[0], exporter.port)
            print(
                f"\n{PROG} demo is running.\n"
                f"  exporter:   {base}/\n"
                f"  metrics:    {base}/metrics\n"
                f"  simulator:  {simulator.url}  (Lenses HQ at /api, Confluent Flink at /sql/v1)\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )

        await run_until_signal(settings, on_started=started)


def demo(arguments: argparse.Namespace) -> int:
    """Run `demo` until SIGTERM/SIGINT; the exit code."""
    listen_addresses = arguments.listen_addresses or [DEFAULT_LISTEN_ADDRESS]
    level, fmt = normal_log_level(arguments.log_level or "info"), arguments.log_format or "console"
    configure_logging(level, fmt)
    address_file = address_file_from(os.environ)
    try:
        return serve(lambda: run_demo(listen_addresses, level, fmt, address_file))
    finally:
        if address_file is not None:
            remove_address_file(address_file)
