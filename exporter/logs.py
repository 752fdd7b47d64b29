"""Logging: structlog, one JSON object (or logfmt line, or `console` text for humans) per line on stderr,
every secret redacted.

Standard-library loggers (aiohttp, asyncio, warnings) go through the same processors, so every line of the
process has the same shape and passes through the same redaction.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"

# Shorter values would redact ordinary words and numbers all over the log.
MIN_SECRET_LENGTH = 4

# Loggers that log every request with its URL at INFO.
QUIET_LOGGERS = ("httpx", "httpcore")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,  # promslog's spelling
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("json", "logfmt", "console")


class Redactor:
    """A processor replacing every occurrence of a current secret value in every string of the event.

    `secrets` is called for each event, so a rotated file secret is redacted from its first use on. Values
    that are not JSON scalars are turned into their `repr` first, since the renderer would print that."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        self.secrets = secrets

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        values = sorted(
            {value for value in self.secrets() if value and len(value) >= MIN_SECRET_LENGTH},
            key=len,
            reverse=True,  # a secret containing another is replaced whole
        )
        if not values:
            return event_dict
        return {key: self._scrub(value, values) for key, value in event_dict.items()}

    def _scrub(self, value: Any, values: list[str]) -> Any:
        if isinstance(value, str):
            for secret in values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {key: self._scrub(item, values) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item, values) for item in value]
        if isinstance(value, logging.LogRecord):  # ProcessorFormatter's bookkeeping, never rendered
            return value
        return self._scrub(repr(value), values)


BAD_REQUEST_INTERVAL = 10.0
"""Seconds between two `bad_request` lines: malformed requests need no authentication to send."""


class BadRequestLines(logging.Filter):
    """aiohttp logs every malformed request at ERROR with its traceback (hundreds a second from anyone who
    can connect): one short WARNING line `bad_request` instead, at most one per `interval` seconds, with
    how many were left out since the last one."""

    def __init__(self, interval: float = BAD_REQUEST_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._last = float("-inf")
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = time.monotonic()
        if now - self._last < self.interval:
            self._left_out += 1
            return False
        self._last = now
        lines = str(error.message or "").strip().splitlines()
        record.exc_info = record.exc_text = None
        record.msg, record.args = "bad_request", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.status = error.code
        record.reason = lines[0][:120] if lines else ""
        record.left_out = self._left_out
        self._left_out = 0
        return True


LEADING_KEYS = ("timestamp", "level", "logger", "event")


def _leading_keys_first(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Timestamp, level, logger and event first on every line, then the event's own fields."""
    ordered = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _shared_processors() -> list[Processor]:
    """What both structlog and foreign (stdlib) records go through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


# Control characters other than the newline (which the logfmt renderer escapes itself) as `\uXXXX`.
_CONTROL_ESCAPES = {code: f"\\u{code:04x}" for code in range(32) if code != 10}


def _logfmt_values(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Values logfmt cannot hold as they are made into one-line strings: lists and mappings as JSON, control
    characters (which would end the pair or the line) escaped."""
    for key, value in event_dict.items():
        if isinstance(value, list | tuple | dict):
            value = json.dumps(value, default=str, ensure_ascii=False)
        if isinstance(value, str):
            value = value.translate(_CONTROL_ESCAPES)
        event_dict[key] = value
    return event_dict


def _final_processors(fmt: str, redactor: Redactor, stream: TextIO) -> list[Processor]:
    if fmt == "logfmt":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            _logfmt_values,
            structlog.processors.LogfmtRenderer(
                key_order=list(LEADING_KEYS), drop_missing=True, bool_as_flag=False
            ),
        ]
    if fmt == "console":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A plain traceback string (never locals), redacted before the console renderer prints it.
            structlog.processors.format_exc_info,
            redactor,
            structlog.dev.ConsoleRenderer(
                colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
        redactor,
        _leading_keys_first,
        structlog.processors.JSONRenderer(sort_keys=False),
    ]


class _Handler(logging.StreamHandler[TextIO]):
    """Our handler, recognisable so that configuring again replaces it instead of adding another."""


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    secrets: Callable[[], Iterable[str]] = lambda: (),
    stream: TextIO | None = None,
) -> None:
    """Send structlog and standard-library logging to `stream` (stderr) as JSON lines, logfmt or console text,
    at `level`, with every value returned by `secrets()` redacted."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    stream = stream if stream is not None else sys.stderr
    redactor = Redactor(secrets)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=_final_processors(fmt, redactor, stream),
    )
    handler = _Handler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    server = logging.getLogger("aiohttp.server")
    for old_filter in [f for f in server.filters if isinstance(f, BadRequestLines)]:
        server.removeFilter(old_filter)
    server.addFilter(BadRequestLines())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(LEVELS[level], logging.WARNING))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: tests reconfigure (and `structlog.testing.capture_logs` must keep working).
        cache_logger_on_first_use=False,
    )
