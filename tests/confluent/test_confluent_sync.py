"""Confluent Flink agents end to end: the simulator over HTTP, the exporter in-process, /metrics scraped and
parsed."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import structlog
from aiohttp import ClientSession, web
from prometheus_client.samples import Sample

from exporter.config import ConfluentSettings, ConfluentTarget, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.confluent.sync import ConfluentSync, start_delays
from exporter.service import Exporter
from exporter.sharding import Shard
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.support import eventually, find, parse_samples, promtool_check_metrics

KEY, SECRET = "sim-key", "sim-secret-0123456789"
TRUSTED_HOST = "flink.us-east-1.aws.confluent.cloud"
OTHER_CONFLUENT_HOST = "flink.eu-west-1.aws.confluent.cloud"
FOREIGN_HOST = "collector.example.com"


class Waits:
    """A retry sleep that records each wait and returns at once (the test never waits for real)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@contextlib.asynccontextmanager
async def simulator(agents: int = 0, environments: int = 1) -> AsyncIterator[Simulator]:
    options = SimulatorOptions(
        environments=0,
        agents=agents,
        seed=7,
        confluent_api_key=KEY,
        confluent_api_secret=SECRET,
        confluent_environments=environments,
    )
    async with Simulator(options, host="127.0.0.1", port=0) as running:
        yield running


def target_for(sim: Simulator, index: int = 0, **overrides: Any) -> ConfluentTarget:
    environment_id = sim.world.confluent_environment_ids[index]
    target = ConfluentTarget(
        name=f"flink-{environment_id}",
        url=sim.url,
        organization_id=sim.world.organization_id,
        environment_id=environment_id,
        api_key=Secret(KEY),
        api_secret=Secret(SECRET),
        tier="production",
        poll_interval=0.2,
        timeout=5.0,
    )
    return replace(target, **overrides)


class Running:
    """An exporter started in-process on a free loopback port, and a client to scrape it."""

    def __init__(self, exporter: Exporter, http: httpx.AsyncClient, waits: Waits) -> None:
        self.exporter = exporter
        self.http = http
        self.waits = waits
        self.url = f"http://127.0.0.1:{exporter.port}"

    @property
    def sync(self) -> ConfluentSync:
        return next(s for s in self.exporter.sources if isinstance(s, ConfluentSync))

    async def text(self) -> str:
        response = await self.http.get(self.url + "/metrics")
        response.raise_for_status()
        return response.text

    async def samples(self, family: str | None = None) -> list[Sample]:
        """Every sample, or only one family's (parsing a thousand agents' exposition takes a while)."""
        text = await self.text()
        if family is not None:
            text = "".join(line for line in text.splitlines(keepends=True) if family_line(line, family))
        return parse_samples(text)

    async def value(self, name: str, **labels: str) -> float | None:
        found = find(await self.samples(name.removesuffix("_total")), name, **labels)
        return found[0].value if found else None

    async def up(self, target: str) -> float | None:
        return await self.value("lenses_hq_exporter_up", source="confluent", target=target)

    async def agents(self, target: str | None = None) -> list[str]:
        labels = {} if target is None else {"environment_id": target}
        info = "confluent_flink_agent_info"
        return [s.labels["agent"] for s in find(await self.samples(info), info, **labels)]


def family_line(line: str, family: str) -> bool:
    """Whether an exposition line belongs to the family (its HELP, TYPE or a sample)."""
    if line.startswith("#"):
        parts = line.split(" ", 3)
        return len(parts) > 2 and parts[2] == family
    name = line.split("{", 1)[0].split(" ", 1)[0]
    return name == family or name.removesuffix("_total") == family or name.removesuffix("_created") == family


@contextlib.asynccontextmanager
async def exporter(
    *targets: ConfluentTarget,
    concurrency: int = 8,
    shard: Shard | None = None,
    waits: Any = None,
    configure: Callable[[ConfluentSync], None] | None = None,
) -> AsyncIterator[Running]:
    settings = Settings(
        web=WebSettings(listen_address="127.0.0.1:0"),
        confluent=ConfluentSettings(targets=targets, concurrency=concurrency),
        shard=shard or Shard(),
    )
    running_exporter = Exporter(settings)
    waits = waits or Waits()
    for source in running_exporter.sources:
        if isinstance(source, ConfluentSync):
            source.set_retry_sleep(waits)
            source.start_step = 0.0
            if configure is not None:
                configure(source)
    await running_exporter.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield Running(running_exporter, http, waits)
    finally:
        await running_exporter.stop()


async def synced(running: Running, target: ConfluentTarget, *, up: float = 1) -> None:
    """Wait until the target's last sync has the given outcome (a first sync has finished: /readyz)."""

    async def check() -> bool:
        ready = (await running.http.get(running.url + "/readyz")).status_code == 200
        return ready and await running.up(target.name) == up

    await eventually(check, what=f"up={up} for {target.name}")


async def requests_sent(running: Running) -> float:
    return (
        await running.value(
            "lenses_hq_exporter_upstream_requests_total", source="confluent", endpoint="agents"
        )
        or 0
    )


# ----- listing sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 100, 101, 1000])
async def test_every_agent_is_exported_exactly_once(count: int) -> None:
    async with simulator() as sim:
        environment_id = sim.world.confluent_environment_ids[0]
        sim.world.set_agent_count(environment_id, count)
        expected = sorted(agent["name"] for agent in sim.world.agents(environment_id))
        target = target_for(sim, poll_interval=3600)
        async with exporter(target) as running:
            await synced(running, target)
            text = await running.text()
            samples = parse_samples(text)
            assert sorted(s.labels["agent"] for s in find(samples, "confluent_flink_agent_info")) == expected
            assert len(expected) == count
            series = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
            assert len(series) == len(set(series))
            assert (
                await running.value("lenses_hq_exporter_objects", source="confluent", target=target.name)
                == count
            )
            assert await requests_sent(running) == max(1, math.ceil(count / 100))
            assert running.sync.last_listing[target.name].pages == max(1, math.ceil(count / 100))
            assert promtool_check_metrics(text) == ""


async def test_series_carry_the_common_labels_and_no_free_text() -> None:
    async with simulator(agents=5) as sim:
        target = target_for(sim)
        async with exporter(target) as running:
            await synced(running, target)
            text = await running.text()
            agents = sim.world.agents(target.environment_id)
            for sample in parse_samples(text):
                if sample.name.startswith("confluent_flink_agent"):
                    assert sample.labels["organization_id"] == sim.world.organization_id
                    assert sample.labels["environment_id"] == target.environment_id
                    assert sample.labels["kafka_cluster_id"].startswith("lkc-")
                    assert sample.labels["tier"] == "production"
            for agent in agents:
                assert agent["spec"]["prompt"] not in text
                assert agent["spec"]["description"] not in text
            info = {
                s.labels["agent"]: s.labels for s in find(parse_samples(text), "confluent_flink_agent_info")
            }
            for agent in agents:
                assert info[agent["name"]]["uid"] == agent["metadata"]["uid"]
                assert info[agent["name"]]["model"] == agent["spec"]["model"]
                assert info[agent["name"]]["kafka_cluster_id"] in agent["metadata"]["self"]


# ----- politeness ---------------------------------------------------------------------------------------


async def test_rate_limit_on_page_three_waits_retry_after_then_completes() -> None:
    async with simulator() as sim:
        target = target_for(sim, poll_interval=3600)
        sim.world.set_agent_count(target.environment_id, 450)
        sim.faults.script(429, api="confluent", page=3, headers={"Retry-After": "1"})
        async with exporter(target) as running:
            await synced(running, target)
            assert running.waits.seconds == [1.0]
            listing = running.sync.last_listing[target.name]
            assert (listing.pages, listing.attempts, listing.waited) == (5, 6, 1.0)
            assert len(await running.agents()) == 450
            failures = await running.value(
                "lenses_hq_exporter_upstream_request_failures_total",
                source="confluent",
                endpoint="agents",
                reason="http_429",
            )
            assert failures == 1


async def test_rate_limit_without_headers_backs_off_with_jitter() -> None:
    async with simulator() as sim:
        target = target_for(sim, poll_interval=3600)
        sim.world.set_agent_count(target.environment_id, 250)
        sim.faults.script(429, api="confluent", page=2, count=2)
        async with exporter(target) as running:
            await synced(running, target)
            first, second = running.waits.seconds
            assert 0.5 <= first <= 1.0 and 1.0 <= second <= 1.5
            assert len(await running.agents()) == 250


async def test_a_persistent_500_on_page_seven_keeps_the_last_good_state_then_recovers() -> None:
    async with simulator() as sim:
        target = target_for(sim)
        world = sim.world
        world.set_agent_count(target.environment_id, 650)
        async with exporter(target) as running:
            await synced(running, target)
            before = sorted(await running.agents())
            assert len(before) == 650
            doomed = before[0]
            sim.faults.script(500, api="confluent", page=7, count=None)
            world.delete_agent(target.environment_id, doomed)
            await synced(running, target, up=0)
            assert sorted(await running.agents()) == before  # nothing of the broken listing applied
            text = await running.text()
            assert 'reason="http_5xx"' in text
            sim.faults.clear()
            await synced(running, target)

            async def gone() -> bool:
                return doomed not in await running.agents()

            await eventually(gone, what="the deleted agent's series to go")
            assert len(await running.agents()) == 649


async def test_a_repeated_page_token_fails_the_sync_without_partial_state() -> None:
    async with simulator() as sim:
        target = target_for(sim)
        sim.world.set_agent_count(target.environment_id, 350)
        sim.faults.confluent_repeat_token = True
        with structlog.testing.capture_logs() as logs:
            async with exporter(target) as running:
                await synced(running, target, up=0)
                assert await running.agents() == []
                sent = await requests_sent(running)

                async def polled_again() -> bool:
                    return await requests_sent(running) >= sent + 2

                await eventually(polled_again, what="more polls")
        failures = [entry for entry in logs if entry["event"] == "sync_failed"]
        assert len(failures) == 1
        assert "already seen" in failures[0]["error"] and failures[0]["reason"] == "page_loop"
        assert failures[0]["page"] == 2 and failures[0]["request_id"]


# ----- redirects ----------------------------------------------------------------------------------------


class Network:
    """A forward proxy on loopback standing in for DNS: it sends each host name to a local server, and
    records which host saw which Authorization header."""

    def __init__(self, routes: dict[str, str]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str | None]] = []
        self.url = ""
        self._runner: web.ServerRunner | None = None
        self._session: ClientSession | None = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        host = request.url.host or ""
        self.seen.append((host, request.headers.get("Authorization")))
        upstream = self.routes.get(host)
        if upstream is None:
            return web.Response(status=502, text=f"no route to {host}")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "proxy-connection")}
        async with self._session.get(
            upstream + request.rel_url.path_qs, headers=headers, allow_redirects=False
        ) as response:
            body = await response.read()
            keep = {
                k: v
                for k, v in response.headers.items()
                if k.lower() in ("content-type", "location", "x-request-id")
            }
            return web.Response(status=response.status, body=body, headers=keep)

    async def __aenter__(self) -> Network:
        self._session = ClientSession()
        self._runner = web.ServerRunner(web.Server(self.handle))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def redirecting_to(host: str) -> web.Application:
    """The configured gateway: answers every request with a 307 to the same path on `host`."""

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": f"http://{host}{request.rel_url.path_qs}"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    return app


def recording() -> tuple[web.Application, list[str | None]]:
    """A server that should never see credentials: it records every Authorization header it gets."""
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"data": [], "metadata": {}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    return app, seen


async def test_a_plain_http_redirect_to_another_confluent_host_never_receives_the_credentials() -> None:
    # Confluent's own hosts are trusted over https only (that case: test_confluent_client's policy table).
    async with simulator() as sim, serve(redirecting_to(OTHER_CONFLUENT_HOST)) as gateway:
        routes = {TRUSTED_HOST: gateway, OTHER_CONFLUENT_HOST: sim.url}
        async with Network(routes) as network:
            target = target_for(sim, url=f"http://{TRUSTED_HOST}", proxy_url=network.url, poll_interval=3600)
            async with exporter(target) as running:
                await synced(running, target, up=0)
            assert network.seen and network.seen[0][0] == TRUSTED_HOST
            assert all(authorization is None for host, authorization in network.seen if host != TRUSTED_HOST)


async def test_a_redirect_to_a_foreign_host_never_receives_the_credentials() -> None:
    collector, seen_by_collector = recording()
    async with (
        simulator(agents=3) as sim,
        serve(redirecting_to(FOREIGN_HOST)) as gateway,
        serve(collector) as collector_url,
        Network({TRUSTED_HOST: gateway, FOREIGN_HOST: collector_url}) as network,
    ):
        target = target_for(sim, url=f"http://{TRUSTED_HOST}", proxy_url=network.url)
        with structlog.testing.capture_logs() as logs:
            async with exporter(target) as running:
                await synced(running, target, up=0)
                assert await running.agents() == []
        assert network.seen and network.seen[0][0] == TRUSTED_HOST
        assert (network.seen[0][1] or "").startswith("Basic ")  # the configured host did get them
        assert all(authorization is None for host, authorization in network.seen if host == FOREIGN_HOST)
        assert all(authorization is None for authorization in seen_by_collector)
        failures = [entry for entry in logs if entry["event"] == "sync_failed"]
        assert failures and "not trusted with credentials" in failures[0]["error"]
        assert failures[0]["reason"] == "redirect_refused"


# ----- changes upstream ---------------------------------------------------------------------------------


async def test_a_deleted_agent_loses_every_series_after_the_next_poll() -> None:
    async with simulator() as sim:
        target = target_for(sim)
        world = sim.world
        world.set_agent_count(target.environment_id, 3)
        world.add_agent(target.environment_id, "doomed-agent", phase="RUNNING", tools=["search", "calc"])
        async with exporter(target) as running:
            await synced(running, target)
            samples = await running.samples()
            assert len([s for s in samples if s.labels.get("agent") == "doomed-agent"]) == 9
            world.delete_agent(target.environment_id, "doomed-agent")

            async def gone() -> bool:
                return not [s for s in await running.samples() if s.labels.get("agent") == "doomed-agent"]

            await eventually(gone, what="doomed-agent's series to go")
            assert len(await running.agents()) == 3


async def test_a_phase_change_moves_the_one_hot_series() -> None:
    async with simulator() as sim:
        target = target_for(sim)
        world = sim.world
        world.add_agent(target.environment_id, "mover", phase="READY")
        async with exporter(target) as running:

            async def phases() -> dict[str, float]:
                found = find(
                    await running.samples("confluent_flink_agent_status_phase"),
                    "confluent_flink_agent_status_phase",
                    agent="mover",
                )
                return {s.labels["phase"]: s.value for s in found}

            async def phase_is(expected: dict[str, float]) -> bool:
                return await phases() == expected

            await eventually(lambda: phase_is({"READY": 1, "RUNNING": 0}), what="READY")
            world.set_agent_phase(target.environment_id, "mover", "RUNNING")
            await eventually(lambda: phase_is({"READY": 0, "RUNNING": 1}), what="RUNNING")
            world.set_agent_phase(target.environment_id, "mover", "DEGRADED")
            await eventually(lambda: phase_is({"READY": 0, "RUNNING": 0, "DEGRADED": 1}), what="DEGRADED")
            world.set_agent_phase(target.environment_id, "mover", "READY")
            await eventually(lambda: phase_is({"READY": 1, "RUNNING": 0}), what="DEGRADED gone")


async def test_an_invalid_agent_is_dropped_and_counted() -> None:
    async with simulator(agents=4) as sim:
        target = target_for(sim)
        sim.world.put_raw_agent(target.environment_id, {"spec": {"model": "nameless"}})
        with structlog.testing.capture_logs() as logs:
            async with exporter(target) as running:
                await synced(running, target)
                assert len(await running.agents()) == 4
                invalid = await running.value(
                    "lenses_hq_exporter_invalid_objects_total", source="confluent", target=target.name
                )
                assert invalid is not None and invalid >= 1
                await running.sync.poll(target)
        dropped = [entry for entry in logs if entry["event"] == "agents_dropped"]
        assert len(dropped) == 1, dropped
        assert dropped[0]["invalid"] == 1 and dropped[0]["request_ids"]


# ----- credentials --------------------------------------------------------------------------------------


async def test_a_wrong_secret_sets_up_zero_and_logs_once_with_the_request_id() -> None:
    wrong = "wrong-secret-do-not-print-7f3a"
    async with simulator(agents=2) as sim:
        target = target_for(sim, api_secret=Secret(wrong))
        with structlog.testing.capture_logs() as logs:
            async with exporter(target) as running:
                await synced(running, target, up=0)

                async def polled_thrice() -> bool:
                    return await requests_sent(running) >= 3

                await eventually(polled_thrice, what="three polls")
                text = await running.text()
                page = (await running.http.get(running.url + "/")).text
        failures = [entry for entry in logs if entry["event"] == "sync_failed"]
        assert len(failures) == 1
        assert failures[0]["status"] == 401 and failures[0]["request_id"]
        assert wrong not in repr(logs) and wrong not in text and wrong not in page
        assert 'reason="http_401"' in text


# ----- several targets ----------------------------------------------------------------------------------


async def test_several_targets_are_polled_into_their_own_partitions() -> None:
    async with simulator(environments=3) as sim:
        world = sim.world
        targets = [target_for(sim, index) for index in range(3)]
        for index, target in enumerate(targets):
            world.set_agent_count(target.environment_id, 10 * (index + 1))
        async with exporter(*targets, concurrency=2) as running:
            for target in targets:
                await synced(running, target)
            for index, target in enumerate(targets):
                assert len(await running.agents(target.environment_id)) == 10 * (index + 1)
            world.set_agent_count(targets[0].environment_id, 0)

            async def emptied() -> bool:
                return await running.agents(targets[0].environment_id) == []

            await eventually(emptied, what="the first target's agents to go")
            assert len(await running.agents(targets[2].environment_id)) == 30


async def test_a_shard_polls_only_the_targets_it_owns() -> None:
    async with simulator(environments=4) as sim:
        targets = [target_for(sim, index) for index in range(4)]
        shard = Shard(index=0, total=2)
        owned = [t for t in targets if shard.owns(t.name)]
        assert 0 < len(owned) < 4, "pick a seed whose environments spread over both shards"
        async with exporter(*targets, shard=shard) as running:
            for target in owned:
                await synced(running, target)
            samples = await running.samples("lenses_hq_exporter_up")
            polled = {s.labels["target"] for s in find(samples, "lenses_hq_exporter_up", source="confluent")}
            assert polled == {t.name for t in owned}


async def test_no_more_targets_are_polled_at_once_than_the_concurrency_allows() -> None:
    in_flight = 0
    most = 0

    async def agents(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)  # upstream latency, so that polls overlap
        in_flight -= 1
        return web.json_response({"data": [{"name": "a"}], "metadata": {}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", agents)
    async with serve(app) as url:
        targets = [
            ConfluentTarget(
                name=f"t{index}",
                url=url,
                organization_id="o",
                environment_id=f"env-{index}",
                poll_interval=3600,
            )
            for index in range(12)
        ]
        async with exporter(*targets, concurrency=3) as running:
            for target in targets:
                await synced(running, target)
    assert 1 < most <= 3


class Gate:
    """A retry sleep that holds the waiting target until the test opens it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
        self.entered.set()
        await self.opened.wait()


async def test_a_target_waiting_out_a_rate_limit_lends_its_slot_to_the_others() -> None:
    async with simulator(agents=10, environments=2) as sim:
        waiting, other = target_for(sim, 0, poll_interval=3600), target_for(sim, 1, poll_interval=0.05)
        listing = f"/sql/v1/organizations/*/environments/{waiting.environment_id}/agents"
        sim.faults.script(429, api="confluent", path=listing, headers={"Retry-After": "120"})
        gate = Gate()
        async with exporter(waiting, other, concurrency=1, waits=gate) as running:
            await asyncio.wait_for(gate.entered.wait(), timeout=10)
            health = running.exporter.health.targets[("confluent", other.name)]
            since = health.last_success

            async def other_polled() -> bool:
                return health.last_success > since

            await eventually(other_polled, what="the other target to poll while the first one waits")
            assert gate.seconds == [120.0]
            gate.opened.set()
            await synced(running, waiting)


class Schedule:
    """Records every target's pauses: the first (the start delay) passes at once, later ones hold the
    target for good, so each target polls exactly once."""

    def __init__(self) -> None:
        self.pauses: dict[str, list[float]] = {}

    async def __call__(self, seconds: float) -> None:
        task = asyncio.current_task()
        name = task.get_name() if task else ""
        self.pauses.setdefault(name, []).append(seconds)
        if len(self.pauses[name]) > 1:
            await asyncio.Event().wait()


async def test_first_polls_are_staggered_and_intervals_jittered() -> None:
    async def agents(request: web.Request) -> web.Response:
        return web.json_response({"data": [], "metadata": {}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", agents)
    schedule = Schedule()

    def staggered(sync: ConfluentSync) -> None:
        sync.start_step = 0.2
        sync.pause = schedule

    async with serve(app) as url:
        targets = [
            ConfluentTarget(
                name=f"t{index}", url=url, organization_id="o", environment_id=f"e{index}", poll_interval=60
            )
            for index in range(8)
        ]
        async with exporter(*targets, configure=staggered) as running:
            for target in targets:
                await synced(running, target)

            async def all_waiting() -> bool:
                return all(len(schedule.pauses.get(f"confluent:{t.name}", [])) == 2 for t in targets)

            await eventually(all_waiting, what="every target waiting for its next poll")
    for index, target in enumerate(targets):
        first, second = schedule.pauses[f"confluent:{target.name}"]
        assert index * 0.2 <= first < (index + 1) * 0.2  # its own slot: no two targets start together
        assert 54 <= second <= 66  # the poll interval, give or take a tenth
    assert len({schedule.pauses[f"confluent:{t.name}"][1] for t in targets}) == len(targets)


def test_fifty_targets_never_start_more_than_five_in_a_second() -> None:
    delays = start_delays(50, 60.0, random.Random(1))
    per_second: dict[int, int] = {}
    for delay in delays:
        per_second[int(delay)] = per_second.get(int(delay), 0) + 1
    assert max(per_second.values()) <= 5
    assert max(delays) <= 10.0
    assert start_delays(4, 0.4, random.Random(1)) == sorted(start_delays(4, 0.4, random.Random(1)))
    assert max(start_delays(4, 0.4, random.Random(1))) <= 0.4
