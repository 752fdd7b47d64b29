"""What `check --connect` finds for one target: each wing's client tries its first request and says how it
went as a `Probe`."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.upstream import UpstreamError

PROBE_STATES = ("reachable", "auth failed", "not found", "unreachable", "error")


@dataclass(frozen=True)
class Probe:
    """The outcome of `check --connect` for one target."""

    source: str
    target: str
    state: str  # one of PROBE_STATES
    detail: str = ""
    request_id: str = ""


def probe_from_error(source: str, target: str, error: UpstreamError) -> Probe:
    """Classify a failed first request for `check --connect`."""
    if error.status in (401, 403):
        state = "auth failed"
    elif error.status == 404:
        state = "not found"
    elif error.reason in ("connect", "timeout", "network"):
        state = "unreachable"
    else:
        state = "error"
    return Probe(source, target, state, error.message, error.request_id)
