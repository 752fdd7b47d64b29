"""Logging: JSON lines (or console text), stdlib loggers routed through structlog, secrets redacted
everywhere, exceptions rendered without local variables."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from exporter.logs import configure_logging

SECRET = "tok-3f9a7c21"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Where the configured logging writes; logging is put back to structlog's defaults afterwards."""
    out = io.StringIO()
    yield out
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__module__ == "exporter.logs":
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_event_and_fields(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [], stream=stream)
    structlog.get_logger("exporter.test").info("sync_failed", target="hq", status=503)
    (line,) = lines(stream)
    assert line["event"] == "sync_failed"
    assert (line["level"], line["logger"], line["target"], line["status"]) == (
        "info",
        "exporter.test",
        "hq",
        503,
    )
    assert line["timestamp"].endswith("Z")
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]


def test_stdlib_loggers_are_json_too(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [], stream=stream)
    logging.getLogger("aiohttp.server").error("Error handling request from %s", "127.0.0.1")
    logging.getLogger("asyncio").warning("Executing %s took %.3f seconds", "<Task>", 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=1)
    records = lines(stream)
    assert [r["logger"] for r in records] == ["aiohttp.server", "asyncio", "py.warnings"]
    assert records[0]["event"] == "Error handling request from 127.0.0.1"
    assert records[0]["level"] == "error"


def test_levels_filter_and_httpx_is_quiet(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [], stream=stream)
    log = structlog.get_logger("exporter.test")
    log.debug("hidden")
    logging.getLogger("httpx").info("HTTP Request: GET http://hq/api/v1/environments")
    logging.getLogger("httpcore.connection").info("connect_tcp.started")
    logging.getLogger("httpx").warning("kept")
    log.info("shown")
    assert [r["event"] for r in lines(stream)] == ["kept", "shown"]


def test_configuring_again_replaces_the_handler(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [], stream=stream)
    configure_logging("debug", "json", lambda: [], stream=stream)
    structlog.get_logger("exporter.test").debug("once")
    assert [r["event"] for r in lines(stream)] == ["once"]


def test_secret_values_are_redacted_everywhere(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [SECRET, "abc"], stream=stream)
    log = structlog.get_logger("exporter.test")

    class Holder:
        def __repr__(self) -> str:
            return f"Holder(token={SECRET})"

    log.info(
        f"event with {SECRET}",
        header=f"Bearer {SECRET}",
        nested={"list": [SECRET, 1]},
        obj=Holder(),
        short="abc",
    )
    logging.getLogger("aiohttp.client").warning("token %s in a stdlib record", SECRET)
    text = stream.getvalue()
    assert SECRET not in text
    first, second = lines(stream)
    assert first["event"] == "event with ***"
    assert first["header"] == "Bearer ***"
    assert first["nested"] == {"list": ["***", 1]}
    assert first["obj"] == "Holder(token=***)"
    assert first["short"] == "abc"  # values shorter than 4 characters are never redacted
    assert second["event"] == "token *** in a stdlib record"


def test_exceptions_are_redacted_and_rendered_without_locals(stream: io.StringIO) -> None:
    configure_logging("info", "json", lambda: [SECRET], stream=stream)
    log = structlog.get_logger("exporter.test")

    def fail() -> None:
        local_marker = "local-marker-value-81"
        raise RuntimeError(f"upstream said {SECRET} ({len(local_marker)})")

    try:
        fail()
    except RuntimeError:
        log.exception("sync_crashed")
    try:
        fail()
    except RuntimeError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    text = stream.getvalue()
    assert SECRET not in text
    assert "local-marker-value-81" not in text
    first, second = lines(stream)
    (exception,) = first["exception"]
    assert exception["exc_type"] == "RuntimeError"
    assert exception["exc_value"] == "upstream said *** (21)"
    assert any(frame["name"] == "fail" for frame in exception["frames"])
    assert all("locals" not in frame for frame in exception["frames"])
    assert second["exception"][0]["exc_value"] == "upstream said *** (21)"


def test_rotated_secret_is_redacted_from_its_first_use(stream: io.StringIO) -> None:
    current = ["first-token-aaaa"]
    configure_logging("info", "json", lambda: list(current), stream=stream)
    log = structlog.get_logger("exporter.test")
    current.append("second-token-bbbb")
    log.info("rotated", value="second-token-bbbb", old="first-token-aaaa")
    (line,) = lines(stream)
    assert (line["value"], line["old"]) == ("***", "***")


def test_console_format_for_humans(stream: io.StringIO) -> None:
    configure_logging("info", "console", lambda: [SECRET], stream=stream)
    log = structlog.get_logger("exporter.test")
    log.info("exporter_started", port=9877, token=SECRET)
    try:
        raise ValueError(f"bad {SECRET}")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    first = text.splitlines()[0]
    assert "exporter_started" in first and "port=9877" in first and "token=***" in first
    assert not first.startswith("{")
    assert "Traceback (most recent call last)" in text and "ValueError: bad ***" in text
    assert SECRET not in text


def test_unknown_level_or_format_is_refused(stream: io.StringIO) -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "json", lambda: [], stream=stream)
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", lambda: [], stream=stream)
