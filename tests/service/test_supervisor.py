"""The supervisor of background loops: a failure is counted, logged once per distinct error with its
traceback (no locals), marks the target down, and the loop starts again after a capped backoff."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from exporter.health import Health
from exporter.logs import configure_logging
from exporter.supervisor import INITIAL_BACKOFF, Supervisor
from exporter.telemetry import Telemetry


def internal_errors(telemetry: Telemetry, source: str, target: str) -> float:
    value = telemetry.registry.get_sample_value(
        "lenses_hq_exporter_internal_errors_total", {"source": source, "target": target}
    )
    assert value is not None
    return value


async def test_a_failing_loop_is_counted_logged_once_marked_down_and_restarted() -> None:
    telemetry = Telemetry()
    status = Health(telemetry).register("lenses", "hq")
    status.succeeded(0.1, 3)
    assert internal_errors(telemetry, "lenses", "hq") == 0  # at 0 from registration on
    runs = 0
    waits: list[float] = []
    done = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 6:
            done.set()
            await asyncio.Event().wait()  # healthy from now on
        raise RecursionError("maximum recursion depth exceeded")

    async def record(seconds: float) -> None:
        waits.append(seconds)

    supervisor = Supervisor(
        "listing",
        loop,
        source="lenses",
        target="hq",
        telemetry=telemetry,
        status=status,
        max_backoff=3.0,
        sleep=record,
    )
    with capture_logs() as logs:
        task = asyncio.create_task(supervisor.run())
        await asyncio.wait_for(done.wait(), timeout=5)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert internal_errors(telemetry, "lenses", "hq") == 5
    assert waits == [INITIAL_BACKOFF, INITIAL_BACKOFF * 2, INITIAL_BACKOFF * 4, 3.0, 3.0]
    assert not status.up and "internal" in status.last_error and "RecursionError" in status.last_error
    assert (
        telemetry.registry.get_sample_value("lenses_hq_exporter_up", {"source": "lenses", "target": "hq"})
        == 0
    )
    crashes = [entry for entry in logs if entry["event"] == "loop_crashed"]
    assert len(crashes) == 1, logs  # the same error five times: one line
    assert isinstance(crashes[0]["exc_info"], RecursionError)
    assert crashes[0]["loop"] == "listing" and crashes[0]["target"] == "hq"


async def test_distinct_errors_are_each_logged_and_a_returning_loop_is_restarted() -> None:
    telemetry = Telemetry()
    errors: list[BaseException | None] = [KeyError("a"), ValueError("b"), None, KeyError("a")]
    done = asyncio.Event()

    async def loop() -> None:
        if not errors:
            done.set()
            await asyncio.Event().wait()
        error = errors.pop(0)
        if error is not None:
            raise error

    async def no_wait(_: float) -> None:
        return None

    supervisor = Supervisor(
        "compactor", loop, source="exporter", target="compactor", telemetry=telemetry, sleep=no_wait
    )
    with capture_logs() as logs:
        task = asyncio.create_task(supervisor.run())
        await asyncio.wait_for(done.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert internal_errors(telemetry, "exporter", "compactor") == 4
    events = [(entry["event"], entry["error"]) for entry in logs]
    assert events == [
        ("loop_crashed", "KeyError"),
        ("loop_crashed", "ValueError"),
        ("loop_ended", "loop ended"),
    ]


async def test_a_task_group_failing_is_named_by_the_task_that_failed() -> None:
    telemetry = Telemetry()
    done = asyncio.Event()
    runs = 0

    async def fails() -> None:
        raise LookupError("one of two tasks")

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            done.set()
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(fails())
            group.create_task(asyncio.Event().wait())

    async def no_wait(_: float) -> None:
        return None

    supervisor = Supervisor(
        "compactor", loop, source="exporter", target="compactor", telemetry=telemetry, sleep=no_wait
    )
    with capture_logs() as logs:
        task = asyncio.create_task(supervisor.run())
        await asyncio.wait_for(done.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(entry["event"], entry["error"]) for entry in logs] == [("loop_crashed", "LookupError")]
    assert internal_errors(telemetry, "exporter", "compactor") == 1


async def test_the_crash_line_has_the_traceback_without_locals_or_secrets() -> None:
    secret = "tok-supervised-5d1e"
    out = io.StringIO()
    configure_logging("info", "json", lambda: [secret], stream=out)
    try:
        telemetry = Telemetry()
        done = asyncio.Event()

        async def loop() -> None:
            if done.is_set():
                await asyncio.Event().wait()
            done.set()
            header = f"Bearer {secret}"
            raise UnicodeEncodeError("ascii", header, 7, 8, f"cannot send {header}")

        async def no_wait(_: float) -> None:
            return None

        supervisor = Supervisor(
            "stream", loop, source="lenses", target="hq", telemetry=telemetry, sleep=no_wait
        )
        task = asyncio.create_task(supervisor.run())
        await asyncio.wait_for(done.wait(), timeout=5)  # set in the very step that raised and was logged
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler).__module__ == "exporter.logs":
                root.removeHandler(handler)
    text = out.getvalue()
    assert secret not in text
    (line,) = [json.loads(raw) for raw in text.splitlines() if "loop_crashed" in raw]
    (exception,) = line["exception"]
    assert exception["exc_type"] == "UnicodeEncodeError"
    assert any(frame["name"] == "loop" for frame in exception["frames"])
    assert all("locals" not in frame for frame in exception["frames"])
