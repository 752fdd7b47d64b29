"""Upstream error answers keep their reason: HQ's error object and Confluent's `errors[]` reach the log line,
the landing page and `lenses_hq_exporter_last_error_info`, bounded, escaped and without secrets; hostile
error bodies (a nesting bomb, control characters, a huge title) never break a sync. Against the simulator
over real HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from structlog.testing import capture_logs

from exporter.config import ConfluentSettings, Settings, WebSettings
from exporter.service import Exporter
from exporter.simulator.lenses import error_body
from exporter.simulator.server import Simulator
from tests.confluent.test_confluent_sync import KEY, SECRET, target_for
from tests.lenses.lenses_fixtures import (
    TOKEN,
    RunningExporter,
    lenses_settings,
    running_exporter,
    simulator_options,
)
from tests.support import eventually, find, promtool_check_metrics

LAST_ERROR = "lenses_hq_exporter_last_error_info"
LISTING = "/v1/environments"


async def down(exporter: RunningExporter) -> bool:
    return await exporter.value("lenses_hq_exporter_up", source="lenses", target="hq") == 0


async def landing(exporter: RunningExporter) -> str:
    response = await exporter.client.get(exporter.url + "/")
    response.raise_for_status()
    return response.text


async def test_an_hq_error_object_reaches_the_log_the_landing_page_and_the_metric() -> None:
    async with Simulator(simulator_options()) as simulator:
        body = error_body(
            403, "hq-req-42", "missing_agent_capabilities", "The agent lacks the metrics capability"
        )
        simulator.faults.script(403, api="lenses", path=LISTING, body=body, count=None)
        with capture_logs() as logs:
            async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
                await eventually(lambda: down(exporter), what="the failed listing")
                samples = await exporter.samples()
                (info,) = find(samples, LAST_ERROR, source="lenses", target="hq")
                assert info.value == 1
                assert info.labels["reason"] == "http_403"
                assert info.labels["upstream_type"] == "missing_agent_capabilities"
                page = await landing(exporter)
                assert "missing_agent_capabilities" in page
                assert "The agent lacks the metrics capability" in page
                assert promtool_check_metrics(await exporter.text()) == ""

                simulator.faults.scripts.clear()
                sync = exporter.exporter.sources[0]
                assert await sync.sync_once()  # type: ignore[attr-defined]
                assert not find(await exporter.samples(), LAST_ERROR), "a success clears the last error"
    (failed,) = [entry for entry in logs if entry.get("event") == "sync_failed"]
    assert failed["upstream_type"] == "missing_agent_capabilities"
    assert failed["upstream_title"] == "The agent lacks the metrics capability"
    assert "missing_agent_capabilities" in failed["error"]
    assert failed["request_id"]


async def test_a_confluent_errors_entry_reaches_the_metric_and_the_landing_page() -> None:
    options = simulator_options(confluent_api_key=KEY, confluent_api_secret=SECRET, agents=2, environments=0)
    async with Simulator(options) as simulator:
        target = target_for(simulator, poll_interval=3600.0)
        body = {
            "errors": [
                {
                    "id": "cc-req-7",
                    "status": "403",
                    "code": "forbidden_organization",
                    "title": "Forbidden",
                    "detail": "The service account has no FlinkDeveloper role",
                }
            ]
        }
        simulator.faults.script(403, api="confluent", body=body, count=None)
        settings = Settings(
            web=WebSettings(listen_address="127.0.0.1:0"), confluent=ConfluentSettings(targets=(target,))
        )
        exporter = Exporter(settings)
        await exporter.start()
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                running = RunningExporter(exporter, client)

                async def failed() -> bool:
                    return bool(find(await running.samples(), LAST_ERROR))

                await eventually(failed, what="the failed poll")
                (info,) = find(await running.samples(), LAST_ERROR)
                assert info.labels == {
                    "source": "confluent",
                    "target": target.name,
                    "reason": "http_403",
                    "upstream_type": "forbidden_organization",
                }
                page = await landing(running)
                assert "forbidden_organization" in page
                assert "no FlinkDeveloper role" in page
        finally:
            await exporter.stop()


async def test_hostile_error_bodies_are_bounded_cleaned_and_never_raise() -> None:
    bomb = b'{"type":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    hostile: list[tuple[int, Any, dict[str, str]]] = [
        (500, bomb, {}),
        (500, b"\xff\xfe not json at all", {}),
        (
            403,
            error_body(
                403, "id\nlenses/hq: reachable", "forbidden\x1b[2J", "Line one\nline two\x07" + "x" * 5000
            ),
            {"X-Request-Id": ""},
        ),
        (401, error_body(401, "r-1", "unauthorised", f"token {TOKEN} is not valid"), {}),
    ]
    async with Simulator(simulator_options()) as simulator:
        with capture_logs() as logs:
            async with running_exporter(lenses_settings(simulator, sse=False)) as exporter:
                sync = exporter.exporter.sources[0]
                for status, body, headers in hostile:
                    simulator.faults.scripts.clear()
                    simulator.faults.script(
                        status, api="lenses", path=LISTING, body=body, headers=headers, count=None
                    )
                    assert not await sync.sync_once()  # type: ignore[attr-defined]
                    (info,) = find(await exporter.samples(), LAST_ERROR)
                    assert info.labels["reason"] == f"http_{status}" if status < 500 else "http_5xx"
                    page = await landing(exporter)
                    for forbidden in ("\x1b", "\x07", TOKEN, "[[[[", "lenses/hq: reachable"):
                        assert forbidden not in page
                    error = sync.status.last_error  # type: ignore[attr-defined]
                    assert len(error) <= 600
                    assert not any(ord(character) < 32 for character in error), repr(error)
                    assert TOKEN not in error
                    assert promtool_check_metrics(await exporter.text()) == ""
                simulator.faults.scripts.clear()
                assert await sync.sync_once()  # type: ignore[attr-defined]
    for entry in logs:
        for value in entry.values():
            assert TOKEN not in str(value)
            assert "\x1b" not in str(value)
