"""Signals: SIGTERM and SIGINT stop the exporter with exit code 0 at any moment, SIGHUP, SIGUSR1 and SIGUSR2
are ignored (logged once the event loop runs). Secret files are re-read when they change, so SIGHUP has
nothing to reload.

Until the event loop takes them over (`exporter.service.run_until_signal`), `install_early` makes SIGTERM
end the process at once with status 0 and ignores the other three; it runs before the heavy imports."""

from __future__ import annotations

import signal
from types import FrameType

IGNORED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
PROGRAM = "lenses-hq-exporter"


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def install_early() -> None:
    """SIGTERM exits 0 (nothing is running yet that needs stopping); SIGHUP, SIGUSR1, SIGUSR2 ignored."""
    signal.signal(signal.SIGTERM, _exit_cleanly)
    for ignored in IGNORED:
        signal.signal(ignored, signal.SIG_IGN)


def starting_the_program(argv: list[str]) -> bool:
    """Whether this interpreter is starting the exporter's own command (the console script, or
    `python -m exporter` while the package is being found), not a program that merely imports it."""
    first = argv[0] if argv else ""
    return first == "-m" or first.rsplit("/", 1)[-1] == PROGRAM
