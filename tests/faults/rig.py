"""The fault rig: the simulator and one exporter with both sources (Lenses HQ with its live stream, one
Confluent target listed in pages), on loopback, with what a row of the matrix needs to watch: `up`,
`last_success`, the stream's state, failure reasons, the data series, the landing page, memory."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import httpx
from prometheus_client.samples import Sample

from exporter.config import (
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    Settings,
    TLSSettings,
    WebSettings,
)
from exporter.config.secrets import Secret
from exporter.confluent.sync import INTERVAL_JITTER
from exporter.service import Exporter
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.support import LandingPage, free_port, parse_samples

LENSES_TOKEN = "matrix-hq-token-5b1d"
API_KEY = "matrix-key-77c2"
API_SECRET = "matrix-secret-0e94a1"
SOURCES = ("lenses", "confluent")
TARGETS = {"lenses": "hq", "confluent": "flink"}

POLL_INTERVAL = 1.0
"""Both sources poll every second, so 'recovered within one poll interval' is measurable in the test."""

GRACE = 1.0
"""Allowance on top of a poll interval for the request itself and a busy two-core machine."""

RECOVERY_DEADLINE = POLL_INTERVAL * (1 + INTERVAL_JITTER) + GRACE
"""A source must be up again this soon after a fault clears while it waits for its next poll."""

RETRY_WAIT = 2.5
"""The longest single wait between two attempts of one sync (backoff 0.5 s doubling, plus jitter, three
waits): a fault that clears during a sync's retries is seen when that wait ends."""

STREAM_DEADLINE = RECOVERY_DEADLINE + RETRY_WAIT
"""After a fault clears, the stream is open again this soon: a successful listing ends its backoff."""

DETECTION_DEADLINE = 20.0
"""How long a row may take to show a fault (retries included)."""


def simulator_options(**overrides: Any) -> SimulatorOptions:
    """A small world (4 environments, 6 agents in one Confluent environment, listed 2 a page), quick SSE
    reconnects and keepalives well inside the idle timeout."""
    base = SimulatorOptions(
        environments=4,
        agents=6,
        seed=11,
        lenses_token=LENSES_TOKEN,
        confluent_api_key=API_KEY,
        confluent_api_secret=API_SECRET,
        confluent_environments=1,
        sse_retry_ms=100,
        keepalive_interval=0.5,
    )
    return replace(base, **overrides)


def rss_bytes() -> int:
    """This process's resident memory (the exporter runs in it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class State:
    """One scrape of the exporter, reduced to what rows assert on."""

    up: dict[str, float]
    last_success: dict[str, float]
    sse_connected: float
    failures: dict[tuple[str, str, str], float]
    events: dict[str, float]
    data: dict[str, frozenset[tuple[str, tuple[tuple[str, str], ...], str]]]
    samples: list[Sample] = field(repr=False)

    def names(self, source: str) -> set[str]:
        """Environments (Lenses) or agents (Confluent) that have series."""
        label = "environment" if source == "lenses" else "agent"
        return {dict(labels)[label] for _, labels, _ in self.data[source] if label in dict(labels)}

    def reasons(self, source: str, since: State) -> set[str]:
        """Failure reasons counted for the source since an earlier state."""
        return {
            f"{endpoint}:{reason}"
            for (name, endpoint, reason), count in self.failures.items()
            if name == source and count > since.failures.get((name, endpoint, reason), 0)
        }


def reduce(samples: list[Sample]) -> State:
    up: dict[str, float] = {}
    last_success: dict[str, float] = {}
    failures: dict[tuple[str, str, str], float] = {}
    events: dict[str, float] = {}
    data: dict[str, set[tuple[str, tuple[tuple[str, str], ...], str]]] = {source: set() for source in SOURCES}
    sse_connected = 0.0
    for sample in samples:
        labels = sample.labels
        if sample.name == "lenses_hq_exporter_up":
            up[labels["source"]] = sample.value
        elif sample.name == "lenses_hq_exporter_last_success_timestamp_seconds":
            last_success[labels["source"]] = sample.value
        elif sample.name == "lenses_hq_exporter_sse_connected":
            sse_connected = sample.value
        elif sample.name == "lenses_hq_exporter_upstream_request_failures_total":
            failures[(labels["source"], labels["endpoint"], labels["reason"])] = sample.value
        elif sample.name == "lenses_hq_exporter_sse_events_total":
            events[labels["event"]] = sample.value
        elif sample.name.startswith(("lenses_environment_", "confluent_flink_agent_")):
            source = "lenses" if sample.name.startswith("lenses_") else "confluent"
            data[source].add((sample.name, tuple(sorted(labels.items())), repr(sample.value)))
    return State(
        up=up,
        last_success=last_success,
        sse_connected=sse_connected,
        failures=failures,
        events=events,
        data={source: frozenset(series) for source, series in data.items()},
        samples=samples,
    )


@dataclass(frozen=True)
class Target:
    """One row of the landing page."""

    state: str
    stream: str
    last_error: str


V = TypeVar("V")


async def _poll(
    read: Callable[[], Awaitable[V]],
    check: Callable[[V], bool],
    deadline: float,
    describe: Callable[[V], str],
) -> tuple[float, V]:
    """Read until `check` holds: (seconds it took, the value). Kept beside `tests.support.eventually`
    because the reliability report needs the time taken."""
    started = time.monotonic()
    while True:
        last = await read()
        if check(last):
            return time.monotonic() - started, last
        if time.monotonic() - started > deadline:
            raise AssertionError(f"not within {deadline:.1f}s: {describe(last)}")
        await asyncio.sleep(0.02)


class Rig:
    """A running exporter (both sources) and, when it is up, the simulator it watches."""

    def __init__(self, exporter: Exporter, http: httpx.AsyncClient, options: SimulatorOptions, port: int):
        self.exporter = exporter
        self.http = http
        self.options = options
        self.port = port
        self.simulator: Simulator | None = None
        self.url = f"http://127.0.0.1:{exporter.port}"

    # -- the upstream ------------------------------------------------------------------------------

    async def start_simulator(self) -> Simulator:
        """Serve the (seeded, so always the same) world on the rig's port."""
        self.simulator = Simulator(self.options, host="127.0.0.1", port=self.port)
        await self.simulator.start()
        return self.simulator

    async def stop_simulator(self) -> None:
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None

    @property
    def sim(self) -> Simulator:
        assert self.simulator is not None, "the simulator is not running"
        return self.simulator

    def world_names(self, source: str) -> set[str]:
        """What the upstream holds now: environment names, or agent names of the target's environment."""
        world = self.sim.world
        if source == "lenses":
            return {name for name in world.environments if not name.startswith("\0")}
        return {agent["name"] for agent in world.agents(world.confluent_environment_ids[0])}

    # -- the exporter ------------------------------------------------------------------------------

    async def state(self) -> State:
        response = await self.http.get(self.url + "/metrics")
        response.raise_for_status()
        return reduce(parse_samples(response.text))

    async def landing(self) -> dict[str, Target]:
        """The landing page's targets by source."""
        response = await self.http.get(self.url + "/")
        response.raise_for_status()
        return {
            row["source"]: Target(row["state"], row["live stream"], row["last error"].replace("—", ""))
            for row in LandingPage(response.text).targets()
        }

    async def until(
        self, check: Callable[[State], bool], *, deadline: float, what: str
    ) -> tuple[float, State]:
        """Poll /metrics until `check` holds; (seconds it took, the state that satisfied it). Fails at the
        deadline with the last state seen."""
        return await _poll(
            self.state,
            check,
            deadline,
            lambda last: f"{what}; last up={last.up}, sse_connected={last.sse_connected}",
        )

    async def until_landing(
        self, check: Callable[[dict[str, Target]], bool], *, deadline: float, what: str
    ) -> dict[str, Target]:
        """Poll the landing page until `check` holds; fails at the deadline with the last page seen."""
        _, page = await _poll(self.landing, check, deadline, lambda last: f"{what}; landing page {last}")
        return page

    async def healthy(self, deadline: float = 15.0, stream_deadline: float = 15.0) -> State:
        """Both sources up with the series matching the world (within `deadline`), and the stream open
        (within `stream_deadline`: after failures its reconnects back off, up to 64 times `retry:`)."""

        def current(state: State) -> bool:
            return all(
                state.up.get(source) == 1 and state.names(source) == self.world_names(source)
                for source in SOURCES
            )

        await self.until(current, deadline=deadline, what="both sources up with current data")
        _, state = await self.until(
            lambda s: current(s) and s.sse_connected == 1, deadline=stream_deadline, what="the stream open"
        )
        return state


def lenses_settings(url: str, **overrides: Any) -> LensesSettings:
    base = LensesSettings(
        name=TARGETS["lenses"],
        url=url + "/api",
        token=Secret(LENSES_TOKEN),
        poll_interval=POLL_INTERVAL,
        timeout=2.0,
        sse_idle_timeout=2.0,
        sse_unavailable_probe_interval=POLL_INTERVAL,
    )
    return replace(base, **overrides)


def confluent_target(
    url: str, organization_id: str, environment_id: str, **overrides: Any
) -> ConfluentTarget:
    base = ConfluentTarget(
        name=TARGETS["confluent"],
        url=url,
        organization_id=organization_id,
        environment_id=environment_id,
        api_key=Secret(API_KEY),
        api_secret=Secret(API_SECRET),
        tier="production",
        poll_interval=POLL_INTERVAL,
        timeout=2.0,
        page_size=2,
    )
    return replace(base, **overrides)


@asynccontextmanager
async def rig(
    *,
    start_simulator: bool = True,
    options: SimulatorOptions | None = None,
    lenses: dict[str, Any] | None = None,
    confluent: dict[str, Any] | None = None,
    scheme: str = "http",
    port: int | None = None,
    tls: TLSSettings | None = None,
) -> AsyncIterator[Rig]:
    """An exporter watching a simulator on `port` (a free one by default); the simulator runs unless
    `start_simulator` is False (the rig starts it later, on the same port, with the same world)."""
    options = options or simulator_options()
    port = port or free_port()
    url = f"{scheme}://127.0.0.1:{port}"
    world = Simulator(options).world  # the seeded world's ids, known before anything listens
    lenses_overrides = dict(lenses or {})
    confluent_overrides = dict(confluent or {})
    if tls is not None:
        lenses_overrides.setdefault("tls", tls)
        confluent_overrides.setdefault("tls", tls)
    settings = Settings(
        web=WebSettings(listen_address="127.0.0.1:0"),
        lenses=lenses_settings(url, **lenses_overrides),
        confluent=ConfluentSettings(
            targets=(
                confluent_target(
                    url, world.organization_id, world.confluent_environment_ids[0], **confluent_overrides
                ),
            )
        ),
    )
    exporter = Exporter(settings)
    for source in exporter.sources:
        if hasattr(source, "start_step"):
            source.start_step = 0.0
    async with httpx.AsyncClient(timeout=10) as http:
        running = Rig(exporter, http, options, port)
        try:
            if start_simulator:
                await running.start_simulator()
            await exporter.start()
            running.url = f"http://127.0.0.1:{exporter.port}"
            yield running
        finally:
            await exporter.stop()
            await running.stop_simulator()


async def concurrently(*waits: Awaitable[Any]) -> list[Any]:
    """Run the waits together; the first failure fails all."""
    return list(await asyncio.gather(*waits))
