"""The exporter's labelled self-counters exist at 0 from the start (so `rate()` and `increase()` see the
first failure), against the simulator over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

import exporter as exporter_package
from exporter.config import ConfluentSettings, Settings, WebSettings
from exporter.service import Exporter
from exporter.simulator.server import Simulator
from exporter.telemetry import FAILURE_REASONS
from exporter.upstream_errors import reason_for_status
from tests.confluent.test_confluent_sync import KEY, SECRET, target_for
from tests.lenses.lenses_fixtures import lenses_settings, simulator_options
from tests.support import eventually, find, promtool_check_metrics, scrape

REASONS = ("timeout", "connect", "network", "http_5xx", "http_429", "http_401", "http_403", "decode")


async def test_labelled_self_counters_start_at_zero_on_a_healthy_system() -> None:
    options = simulator_options(confluent_api_key=KEY, confluent_api_secret=SECRET, agents=3)
    async with Simulator(options) as simulator:
        target = target_for(simulator, poll_interval=3600.0)
        settings = Settings(
            web=WebSettings(listen_address="127.0.0.1:0"),
            lenses=lenses_settings(simulator, kafka_connections=True),
            confluent=ConfluentSettings(targets=(target,)),
        )
        exporter = Exporter(settings)
        await exporter.start()
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                url = f"http://127.0.0.1:{exporter.port}/metrics"

                async def both_up() -> bool:
                    samples = await scrape(client, url)
                    return sum(s.value for s in find(samples, "lenses_hq_exporter_up")) == 2

                await eventually(both_up, what="both targets up")
                response = await client.get(url)
                samples = await scrape(client, url)
        finally:
            await exporter.stop()
    failures = "lenses_hq_exporter_upstream_request_failures_total"
    for source, endpoint in (
        ("lenses", "environments"),
        ("lenses", "kafka_connections"),
        ("lenses", "stream"),
        ("confluent", "agents"),
    ):
        for reason in REASONS:
            found = find(samples, failures, source=source, endpoint=endpoint, reason=reason)
            assert [s.value for s in found] == [0], (source, endpoint, reason)
    assert [s.value for s in find(samples, "lenses_hq_exporter_sse_reconnects_total", target="hq")] == [0]
    for event in ("environment_deleted", "unknown", "oversize", "invalid"):
        found = find(samples, "lenses_hq_exporter_sse_events_total", target="hq", event=event)
        assert [s.value for s in found] == [0], event
    for source, name in (("lenses", "hq"), ("confluent", target.name)):
        found = find(samples, "lenses_hq_exporter_invalid_objects_total", source=source, target=name)
        assert [s.value for s in found] == [0], source
    for field in ("agent_connected", "num_topics", "roundtrip_duration"):
        found = find(
            samples, "lenses_hq_exporter_invalid_fields_total", source="lenses", target="hq", field=field
        )
        assert [s.value for s in found] == [0], field
    assert not find(samples, "lenses_hq_exporter_last_error_info")
    assert promtool_check_metrics(response.text) == ""


def test_every_reason_the_code_raises_is_created_at_zero() -> None:
    source = "\n".join(path.read_text() for path in Path(exporter_package.__file__).parent.rglob("*.py"))
    raised = set(re.findall(r'UpstreamError\(\s*"([a-z_0-9]+)"', source))
    raised |= set(re.findall(r'return "(http_[0-9a-z]+)"', source))
    raised |= {reason_for_status(status) for status in (401, 403, 404, 418, 429, 500, 503)}
    raised -= {"credentials", "secret"}  # raised before any request is sent: never a request failure
    assert raised
    assert raised <= set(FAILURE_REASONS), raised - set(FAILURE_REASONS)
