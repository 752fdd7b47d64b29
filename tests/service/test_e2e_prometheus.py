"""End to end: simulator → exporter → a real Prometheus (scraping every second, loading the rules) → a real
Alertmanager (routing with the example configuration) → this test's own webhook receiver.

Proves that every dashboard query, its variables substituted, returns data from Prometheus, that every
variable lists values, that the shipped rules evaluate cleanly on real series, and that disconnecting an
agent in the simulator reaches the webhook as the disconnect alert of that environment. The exporter watches
two simulated HQs holding environments of the same names: a disconnect in one fires for that HQ only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from exporter.alerts.rules import AlertSettings, render
from exporter.config import ConfluentSettings, ConfluentTarget, LensesSettings, Settings, WebSettings
from exporter.config.secrets import Secret
from exporter.service import Exporter
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.mixin.dashboard_queries import load, queries, substitute
from tests.support import eventually, find, free_port, require_binary, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RULE_FILE = ROOT / "alerts" / "lenses-hq-exporter.rules.yml"
ALERTMANAGER_EXAMPLE = ROOT / "alerts" / "alertmanager.example.yml"
JOB = "lenses-hq-exporter"
LENSES_TOKEN = "sim-hq-token"
API_KEY, API_SECRET = "sim-key", "sim-secret"
RATE_INTERVAL = "15s"
DEADLINE = 60.0
HQ, OTHER_HQ = "hq-eu", "hq-us"
"""The two HQs' target names: the first is also the Confluent simulator."""


@dataclass
class Webhook:
    """Alertmanager's receiver: records every notification with the receiver path it was sent to."""

    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.notifications.append((request.path, await request.json()))
        return web.Response(text="ok")

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert of every notification so far."""
        return [(path, alert) for path, body in self.notifications for alert in body["alerts"]]


@dataclass
class Stack:
    simulator: Simulator
    """The HQ named `HQ` (and the Confluent upstream)."""
    other: Simulator
    """The HQ named `OTHER_HQ`: the same environment names."""
    exporter: Exporter
    prometheus: httpx.AsyncClient
    webhook: Webhook


async def serve_process(stack: contextlib.AsyncExitStack, log: Path, *command: str) -> None:
    """Start a binary with its output in `log`; it is killed and reaped when the stack closes."""
    output = stack.enter_context(log.open("wb"))
    process = await asyncio.create_subprocess_exec(*command, stdout=output, stderr=asyncio.subprocess.STDOUT)

    async def kill() -> None:
        if process.returncode is None:
            process.kill()
        await process.wait()

    stack.push_async_callback(kill)


async def wait_ready(client: httpx.AsyncClient, what: str) -> None:
    async def ready() -> bool:
        try:
            return (await client.get("/-/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=DEADLINE, interval=0.05, what=f"{what} to be ready")


def exporter_settings(simulator: Simulator, other: Simulator, *, healthy: bool = False) -> Settings:
    """Two HQs (with the kafka-connections poll) and every Confluent environment of the first simulator, plus
    (unless `healthy`) a Confluent target that does not exist, so the exporter has one upstream down."""
    world = simulator.world
    targets = [
        ConfluentTarget(
            name=f"flink-{index}",
            url=simulator.url,
            organization_id=world.organization_id,
            environment_id=environment_id,
            api_key=Secret(API_KEY),
            api_secret=Secret(API_SECRET),
            tier="production",
            poll_interval=1.0,
        )
        for index, environment_id in enumerate(world.confluent_environment_ids)
    ]
    targets += (
        []
        if healthy
        else [
            ConfluentTarget(
                name="flink-missing",
                url=simulator.url,
                organization_id=world.organization_id,
                environment_id="env-missing",
                api_key=Secret(API_KEY),
                api_secret=Secret(API_SECRET),
                poll_interval=1.0,
            )
        ]
    )
    hqs = tuple(
        LensesSettings(
            name=name,
            url=hq.url + "/api",
            token=Secret(LENSES_TOKEN),
            poll_interval=1.0,
            kafka_connections=True,
        )
        for name, hq in ((HQ, simulator), (OTHER_HQ, other))
    )
    return Settings(
        web=WebSettings(listen_address="127.0.0.1:0"),
        lenses=hqs[0],
        lenses_targets=hqs,
        confluent=ConfluentSettings(targets=tuple(targets)),
    )


def alertmanager_config(webhook: str) -> dict[str, Any]:
    """The example configuration, every receiver sending to the test's webhook under its own path, and
    notifications sent without the production waits."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    for receiver in config["receivers"]:
        for webhook_config in receiver.get("webhook_configs", []):
            webhook_config["url"] = f"{webhook}/{receiver['name']}"
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, rules: str, *, healthy: bool = False) -> AsyncIterator[Stack]:
    """Simulator, exporter, webhook, Alertmanager and Prometheus on free loopback ports. Prometheus scrapes
    the exporter as the README says (`honor_labels: true`), with target labels `environment` and `tier` of
    its own, as many teams set on every job."""
    prometheus_binary = require_binary("prometheus")
    alertmanager_binary = require_binary("prometheus-alertmanager")
    options = SimulatorOptions(
        environments=6,
        agents=6,
        seed=3,
        lenses_token=LENSES_TOKEN,
        confluent_api_key=API_KEY,
        confluent_api_secret=API_SECRET,
        churn=False,
        sse_retry_ms=100,
        keepalive_interval=1.0,
    )
    async with contextlib.AsyncExitStack() as stack:
        simulator = await stack.enter_async_context(Simulator(options, host="127.0.0.1", port=0))
        other = await stack.enter_async_context(Simulator(options, host="127.0.0.1", port=0))
        exporter = Exporter(exporter_settings(simulator, other, healthy=healthy))
        await exporter.start()
        stack.push_async_callback(exporter.stop)

        webhook = Webhook()
        app = web.Application()
        app.router.add_post("/{receiver}", webhook.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        webhook.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

        alertmanager_port, prometheus_port = free_port(), free_port()
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(webhook.url)))
        await serve_process(
            stack,
            tmp_path / "alertmanager.log",
            alertmanager_binary,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{alertmanager_port}",
            "--cluster.listen-address=",
        )
        (tmp_path / "rules.yml").write_text(rules)
        prometheus_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "honor_labels": True,
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{exporter.port}"],
                            "labels": {"environment": "monitoring", "tier": "platform"},
                        }
                    ],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prometheus_config))
        await serve_process(
            stack,
            tmp_path / "prometheus.log",
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--enable-feature=extra-scrape-metrics",  # scrape_timeout_seconds, for the scrape panel
        )
        prometheus = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus_port}", timeout=10.0)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{alertmanager_port}") as alertmanager:
            await wait_ready(alertmanager, "alertmanager")
        await wait_ready(prometheus, "prometheus")
        yield Stack(simulator, other, exporter, prometheus, webhook)


async def query(prometheus: httpx.AsyncClient, expr: str, *, instant: bool = True) -> list[dict[str, Any]]:
    """The result of a PromQL query (an instant one, or a range over the last 30 s); a bad query fails."""
    if instant:
        response = await prometheus.get("/api/v1/query", params={"query": expr})
    else:
        now = time.time()
        params = {"query": expr, "start": str(now - 30), "end": str(now), "step": "1"}
        response = await prometheus.get("/api/v1/query_range", params=params)
    body = response.json()
    if body.get("status") != "success":
        pytest.fail(f"Prometheus rejected {expr!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def flap_once(stack: Stack, environment: str) -> None:
    """The environment's agent disconnects and, once the exporter has seen it, connects again."""
    url = f"http://127.0.0.1:{stack.exporter.port}/metrics"
    async with httpx.AsyncClient(timeout=10.0) as client:

        async def connected_is(value: float) -> bool:
            samples = await scrape(client, url)
            return [
                s.value
                for s in find(
                    samples, "lenses_environment_agent_connected", environment=environment, target=HQ
                )
            ] == [value]

        await eventually(lambda: connected_is(1), timeout=DEADLINE, what=f"{environment} connected")
        stack.simulator.world.disconnect_agent(environment)
        await eventually(lambda: connected_is(0), timeout=DEADLINE, what=f"{environment} disconnected")
        stack.simulator.world.connect_agent(environment)


def connected_environment(simulator: Simulator, tier: str | None = None) -> str:
    """A connected environment (of a tier, when given)."""
    world = simulator.world
    for name in sorted(world.environments):
        if world.connected(name) and (tier is None or world.environment(name)["tier"] == tier):
            return name
    raise AssertionError(f"the simulated world has no connected {tier or ''} environment")


def dashboard_queries(environment: str) -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """Every panel query of every dashboard, its variables substituted, (expr, instant) by a description;
    and every query variable's definition by a description."""
    pending: dict[str, tuple[str, bool]] = {}
    variables: dict[str, str] = {}
    for name, model in load().items():
        values = {
            "__rate_interval": RATE_INTERVAL,
            "job": JOB,
            "tier": ".*",
            "instance": ".+",
            "target": ".*",
            # The environment dashboard shows one environment; elsewhere the variable is multi-valued.
            "environment": environment if name == "lenses-hq-environment.json" else ".*",
        }
        for title, target in queries(model):
            expr = substitute(target["expr"], values)
            pending[f"{name} / {title} / {target['refId']}: {expr}"] = (expr, bool(target.get("instant")))
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                definition = substitute(variable["query"]["query"], values)
                variables[f"{name} / ${variable['name']}: {definition}"] = definition
    return pending, variables


async def every_query_returns_data(
    prometheus: httpx.AsyncClient, pending: dict[str, tuple[str, bool]]
) -> None:
    """Poll until every query has returned data at least once; fail listing those that never did."""

    async def every_query_has_data() -> bool:
        for key, (expr, instant) in list(pending.items()):
            if await query(prometheus, expr, instant=instant):
                del pending[key]
        return not pending

    try:
        await eventually(every_query_has_data, timeout=DEADLINE, interval=0.5, what="panel data")
    except pytest.fail.Exception:
        pytest.fail("panels whose query returned no data:\n" + "\n".join(sorted(pending)))


async def test_every_panel_returns_data_on_a_healthy_world(tmp_path: Path) -> None:
    # No fault injected and every target up: a healthy system shows 0 where nothing went wrong, never
    # "No data"; and the exporter's own `environment`/`tier` survive the target labels of the same names.
    async with running_stack(tmp_path, RULE_FILE.read_text(), healthy=True) as stack:
        environment = connected_environment(stack.simulator)
        # The demo world's agents come and go: the environment shown has had one such change, which its
        # "last connectivity change" panel exists to show.
        await flap_once(stack, environment)
        pending, _ = dashboard_queries(environment)
        await every_query_returns_data(stack.prometheus, pending)
        names = {
            series["metric"]["environment"]
            for series in await query(stack.prometheus, f'lenses_environment_info{{job="{JOB}"}}')
        }
        assert names == set(stack.simulator.world.environments)
        assert not await query(stack.prometheus, '{__name__=~".+", exported_environment!=""}')


async def test_every_dashboard_query_and_variable_returns_data(tmp_path: Path) -> None:
    async with running_stack(tmp_path, RULE_FILE.read_text()) as stack:
        world, faults = stack.simulator.world, stack.simulator.faults
        # States some panels exist to show: agents running and in an unknown phase, rate limiting, and a
        # live stream that dropped once.
        first, second = world.agents(world.confluent_environment_ids[0])[:2]
        world.set_agent_phase(world.confluent_environment_ids[0], first["name"], "RUNNING")
        world.set_agent_phase(world.confluent_environment_ids[0], second["name"], "DEGRADED")
        faults.script(429, api="confluent", headers={"Retry-After": "0"}, count=3)
        faults.sse_drop_interval = 1.0
        environment = connected_environment(stack.simulator)
        await flap_once(stack, environment)
        pending, variables = dashboard_queries(environment)
        await every_query_returns_data(stack.prometheus, pending)

        for key, definition in variables.items():
            selector, label = definition.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
            response = await stack.prometheus.get(
                f"/api/v1/label/{label}/values", params={"match[]": selector}
            )
            assert response.json()["data"], f"variable lists no values: {key}"

        # The shipped rules load and evaluate without error on the exporter's real series.
        async def rules_evaluated() -> list[dict[str, Any]] | None:
            groups = (await stack.prometheus.get("/api/v1/rules")).json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return rules if rules and all(rule["health"] == "ok" for rule in rules) else None

        rules = await eventually(rules_evaluated, timeout=DEADLINE, what="every rule evaluated")
        shipped = yaml.safe_load(RULE_FILE.read_text())
        assert len(rules) == sum(len(group["rules"]) for group in shipped["groups"])


async def test_disconnecting_an_agent_delivers_its_alert_to_the_webhook(tmp_path: Path) -> None:
    # The shipped rules, with `for` shortened so the test takes seconds rather than ten minutes.
    rules = render(AlertSettings(agent_disconnected_for="2s"))
    async with running_stack(tmp_path, rules) as stack:
        environment = connected_environment(stack.simulator, tier="production")
        assert stack.other.world.connected(environment), "the other HQ has the same environment, connected"
        selector = f'lenses_environment_agent_connected{{job="{JOB}", environment="{environment}"}}'

        async def seen_connected() -> bool:
            return len(await query(stack.prometheus, f"{selector} == 1")) == 2

        await eventually(seen_connected, timeout=DEADLINE, what=f"{environment} connected in Prometheus")

        def disconnect_alerts() -> list[tuple[str, dict[str, Any]]]:
            return [
                (path, alert)
                for path, alert in stack.webhook.alerts()
                if alert["labels"]["alertname"] == "LensesHQAgentDisconnected"
                and alert["labels"].get("environment") == environment
                and alert["status"] == "firing"
            ]

        assert disconnect_alerts() == []
        stack.simulator.world.disconnect_agent(environment)

        async def delivered() -> list[tuple[str, dict[str, Any]]]:
            return disconnect_alerts()

        (path, alert), *_ = await eventually(delivered, timeout=DEADLINE, what="the disconnect alert")
        assert path == "/pager", "a production critical routes to the pager"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["tier"] == "production"
        assert alert["labels"]["target"] == HQ
        description = alert["annotations"]["description"]
        assert environment in description and f"HQ {HQ}" in description and OTHER_HQ not in description
        display_name = stack.simulator.world.environment(environment)["display_name"]
        assert alert["labels"]["display_name"] == display_name and display_name in description
        assert alert["annotations"]["runbook_url"].endswith("#lenseshqagentdisconnected")
        # Prometheus' own view: the alert fires for the HQ whose agent went, not for the other one.
        firing = await query(
            stack.prometheus, f'ALERTS{{alertname="LensesHQAgentDisconnected", environment="{environment}"}}'
        )
        assert {series["metric"]["target"] for series in firing} == {HQ}
        assert all(a["labels"]["target"] == HQ for _, a in disconnect_alerts())


async def test_a_burst_of_flaps_delivers_the_flapping_alert_to_the_webhook(tmp_path: Path) -> None:
    # The shipped rules with a short window and `for`: three disconnect/connect pairs, each far shorter than
    # a scrape interval, so Prometheus never sees agent_connected at 0; only the counter tells.
    rules = render(AlertSettings(agent_flapping_window="1m", agent_flapping_for="1s"))
    async with running_stack(tmp_path, rules) as stack:
        environment = connected_environment(stack.simulator, tier="production")
        selector = f'lenses_environment_agent_disconnects_total{{job="{JOB}", environment="{environment}"}}'

        async def counter_scraped() -> bool:
            return bool(await query(stack.prometheus, f"{selector} == 0"))

        await eventually(counter_scraped, timeout=DEADLINE, what=f"{environment}'s disconnects at 0")

        def flapping_alerts() -> list[tuple[str, dict[str, Any]]]:
            return [
                (path, alert)
                for path, alert in stack.webhook.alerts()
                if alert["labels"]["alertname"] == "LensesHQAgentFlapping" and alert["status"] == "firing"
            ]

        assert flapping_alerts() == []
        for _ in range(3):
            stack.simulator.world.disconnect_agent(environment)
            stack.simulator.world.connect_agent(environment)

        async def delivered() -> list[tuple[str, dict[str, Any]]]:
            return flapping_alerts()

        (path, alert), *others = await eventually(delivered, timeout=DEADLINE, what="the flapping alert")
        assert path == "/chat-production", "a production warning routes to the production chat"
        assert alert["labels"]["environment"] == environment
        assert alert["labels"]["severity"] == "warning"
        # increase() extrapolates a little over a short history: at least the three seen.
        count = re.search(r"disconnected (\d+) times", alert["annotations"]["description"])
        assert count and int(count.group(1)) >= 3, alert["annotations"]["description"]
        assert alert["annotations"]["runbook_url"].endswith("#lenseshqagentflapping")
        assert all(other["labels"]["environment"] == environment for _, other in others)
        assert not await query(
            stack.prometheus, f'lenses_environment_agent_connected{{environment="{environment}"}} == 0'
        )
