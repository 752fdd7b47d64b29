"""Keeping background loops alive: a loop that raises something unexpected (or returns) is logged once per
distinct error with its traceback, counted in `lenses_hq_exporter_internal_errors_total`, marks its target
down, and starts again after a capped backoff. Only cancellation ends a supervised loop."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable

import structlog

from exporter import memory
from exporter.health import TargetStatus
from exporter.telemetry import Telemetry

log = structlog.get_logger("exporter.supervisor")

INITIAL_BACKOFF = 0.5
"""Seconds before the first restart; doubled after each further failure, up to the loop's cap."""
HEALTHY_RUN = 60.0
"""A loop that ran this long before failing starts over from the initial backoff."""
LOGGED_ERRORS = 64
"""Distinct errors remembered per loop for the log-once rule (a loop failing in ever new ways still logs
at most this many tracebacks)."""


def error_key(error: BaseException) -> str:
    """What makes two failures 'the same error': the exception type and where it was raised (not its
    message, which may carry positions or values that change at every occurrence)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__qualname__}@{where}"


class Supervisor:
    """Runs one background loop forever; see the module's docstring."""

    def __init__(
        self,
        loop: str,
        run: Callable[[], Awaitable[None]],
        *,
        source: str,
        target: str,
        telemetry: Telemetry,
        status: TargetStatus | None = None,
        max_backoff: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.loop = loop
        self.run_once = run
        self.source = source
        self.target = target
        self.telemetry = telemetry
        self.status = status
        self.max_backoff = max(max_backoff, 0.0)
        self.sleep = sleep
        self.restarts = 0
        self._logged: set[str] = set()
        telemetry.internal_errors.labels(source, target)  # the series exists at 0 from the start

    async def run(self) -> None:
        """Run the loop, restarting it after every failure, until cancelled."""
        failures = 0
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the point of a supervisor
                self._failed(error)
            else:
                self._failed(None)
            if asyncio.get_running_loop().time() - started >= HEALTHY_RUN:
                failures = 0
            failures += 1
            self.restarts += 1
            await self.sleep(min(self.max_backoff, INITIAL_BACKOFF * 2 ** min(failures - 1, 16)))

    def _failed(self, error: Exception | None) -> None:
        while isinstance(error, ExceptionGroup):
            error = error.exceptions[0]  # a loop of several tasks: named by the (first) one that failed
        memory.note_failure()
        self.telemetry.internal_errors.labels(self.source, self.target).inc()
        what = type(error).__name__ if error is not None else "loop ended"
        if self.status is not None:
            self.status.failed(f"internal error in the {self.loop} loop: {what}")
        key = error_key(error) if error is not None else "returned"
        if key in self._logged or len(self._logged) >= LOGGED_ERRORS:
            return
        self._logged.add(key)
        fields = {"loop": self.loop, "source": self.source, "target": self.target, "error": what}
        if error is None:
            log.error("loop_ended", **fields)
        else:
            log.error("loop_crashed", exc_info=error, **fields)


async def supervise(
    loop: str,
    run: Callable[[], Awaitable[None]],
    *,
    source: str,
    target: str,
    telemetry: Telemetry,
    status: TargetStatus | None = None,
    max_backoff: float = 30.0,
) -> None:
    """Run `run` under a `Supervisor` until cancelled."""
    await Supervisor(
        loop, run, source=source, target=target, telemetry=telemetry, status=status, max_backoff=max_backoff
    ).run()
