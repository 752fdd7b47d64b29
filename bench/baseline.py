"""The baseline: the same families produced the standard way, for comparison.

The process keeps the decoded state (environments from a listing and the live stream, agents from one
listing per target) and serves `/metrics` through a prometheus_client custom collector that builds every
family from that state at scrape time and `generate_latest`, run off the event loop with
`asyncio.to_thread` (gzip too, at the exporter's level 1), as one would write such an exporter. It uses the
exporter's own clients, models and family declarations, so only the way the exposition is produced
differs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bench.common import announce, until_terminated
from exporter.config import ConfluentTarget, LensesSettings, load_settings
from exporter.confluent import metrics as confluent_metrics
from exporter.confluent.model import FlinkAgent, InvalidAgent, decode_agent
from exporter.confluent.sync import ConfluentSync
from exporter.exposition.families import FamilyGroup
from exporter.exposition.store import Store
from exporter.health import Health
from exporter.lenses import metrics as lenses_metrics
from exporter.lenses.client import LensesClient
from exporter.lenses.framing import EventParser
from exporter.lenses.model import Environment, InvalidEnvironment, decode_environment
from exporter.lenses.stream import connect_stream
from exporter.logs import configure_logging
from exporter.telemetry import Telemetry
from exporter.upstream import UpstreamError
from exporter.web.app import TEXT_CONTENT_TYPE, wants_gzip


class State:
    """Decoded environments by name, and each Confluent target's agents."""

    def __init__(self) -> None:
        self.environments: dict[str, Environment] = {}
        self.hq = ""
        """The HQ's `target` label."""
        self.agents: dict[str, tuple[ConfluentTarget, list[FlinkAgent]]] = {}

    def put_raw(self, raw: Any) -> None:
        """Decode and keep one environment (undecodable ones are skipped)."""
        with contextlib.suppress(InvalidEnvironment):
            environment = decode_environment(raw)
            self.environments[environment.name] = environment


class StateCollector(Collector):
    """Every data family, built from the state when collected."""

    def __init__(self, state: State, lenses_group: FamilyGroup[Environment]) -> None:
        self.state = state
        self.lenses_group = lenses_group

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One GaugeMetricFamily per family with samples, environments first, then agents."""
        # list() of a dict's values runs in C under the GIL: a consistent snapshot while the loop updates.
        environments = list(self.state.environments.values())
        for family in self.lenses_group.families:
            metric = GaugeMetricFamily(
                family.name, family.help, labels=[*lenses_metrics.COMMON_LABELS, *family.labels]
            )
            for environment in environments:
                common = lenses_metrics.common_values(environment, self.state.hq)
                for label_values, value in family.read(environment):
                    metric.add_metric([*common, *label_values], value)
            if metric.samples:
                yield metric
        targets = list(self.state.agents.values())
        for agent_family in confluent_metrics.GROUP.families:
            metric = GaugeMetricFamily(
                agent_family.name,
                agent_family.help,
                labels=[*confluent_metrics.COMMON_LABELS, *agent_family.labels],
            )
            for target, agents in targets:
                for agent in agents:
                    common_agent = confluent_metrics.common_values(target, agent)
                    for label_values, value in agent_family.read(agent):
                        metric.add_metric([*common_agent, *label_values], value)
            if metric.samples:
                yield metric


async def follow_stream(settings: LensesSettings, client: LensesClient, state: State) -> None:
    """Apply the live stream to the state, reconnecting after a second on any failure."""
    parser = EventParser(settings.sse_max_event_bytes)
    while True:
        try:
            async with connect_stream(
                client.stream_http, client.stream_url, client.auth_headers(), parser
            ) as stream:
                async for event in stream.events():
                    apply_event(state, event.event, event.data)
        except (UpstreamError, ValueError):
            pass
        await asyncio.sleep(1.0)


def apply_event(state: State, name: str, data: str) -> None:
    """One live-stream event applied to the state, the way the exporter reads them."""
    try:
        decoded = json.loads(data)
    except ValueError:
        return
    if name == "snapshot" and isinstance(decoded, dict) and isinstance(decoded.get("items"), list):
        state.environments = {}
        for raw in decoded["items"]:
            state.put_raw(raw)
    elif name == "environment_updated":
        state.put_raw(decoded)
    elif name == "environment_deleted" and isinstance(decoded, dict):
        state.environments.pop(str(decoded.get("name")), None)


async def serve(config: Path) -> None:
    """Load the state, serve `/metrics` the standard way, follow the stream until SIGTERM."""
    settings = load_settings(config)
    configure_logging("warning", "json", settings.secret_values)
    telemetry = Telemetry()
    state = State()
    tasks: list[asyncio.Task[None]] = []
    lenses_group = lenses_metrics.build_group()
    closers = []
    if settings.lenses is not None:
        lenses = settings.lenses
        state.hq = lenses.name
        lenses_group = lenses_metrics.build_group(lenses.roundtrip_duration_unit, lenses.metadata_labels)
        client = LensesClient(lenses, telemetry)
        closers.append(client.aclose)
        items, _ = await client.list_environments()
        for raw in items:
            state.put_raw(raw)
        tasks.append(asyncio.create_task(follow_stream(lenses, client, state)))
    if settings.confluent.targets:
        store = Store([confluent_metrics.GROUP])
        confluent = ConfluentSync(settings.confluent, store, Health(telemetry), telemetry)
        closers.append(confluent.aclose)
        for target in confluent.targets:
            listing = await confluent.clients[target.name].list_agents()
            agents = []
            for raw in listing.items:
                with contextlib.suppress(InvalidAgent):
                    agents.append(decode_agent(raw))
            state.agents[target.name] = (target, agents)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(state, lenses_group))

    def exposition(compress: bool) -> bytes:
        body = generate_latest(registry) + generate_latest(telemetry.registry)
        return gzip.compress(body, compresslevel=1) if compress else body

    async def metrics(request: web.Request) -> web.Response:
        compress = wants_gzip(request.headers.get("Accept-Encoding", ""))
        body = await asyncio.to_thread(exposition, compress)
        headers = {"Content-Type": TEXT_CONTENT_TYPE}
        if compress:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    announce(
        port=runner.addresses[0][1],
        environments=len(state.environments),
        agents=sum(len(agents) for _, agents in state.agents.values()),
    )
    try:
        await until_terminated()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in closers:
            with contextlib.suppress(Exception):
                await close()
        await runner.cleanup()


def main() -> None:
    """`python -m bench.baseline CONFIG`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", type=Path)
    asyncio.run(serve(parser.parse_args().config))


if __name__ == "__main__":
    main()
