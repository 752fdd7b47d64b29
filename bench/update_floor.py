"""The decode+render floor of a stream update: what the least an exporter could spend on one
`environment_updated` event is, measured on the very events the exporter under test received.

The floor decodes each event's data with `json.loads` and renders the environment's series with a minimal
formatter: one f-string per sample, no store, no escaping beyond what these names need, no checks. It is
a reference, not an implementation: the exporter's CPU per applied update divided by this floor says how
much of its work is more than the update itself."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import aiohttp

SECTIONS = ("kafka", "data", "apps", "connect", "other")


def _seconds(value: Any) -> float:
    return datetime.fromisoformat(value).timestamp() if isinstance(value, str) and value else 0.0


def render(environment: dict[str, Any]) -> str:
    """The environment's series as exposition lines, the way a minimal exporter would write them."""
    name, tier = environment.get("name", ""), environment.get("tier", "")
    labels = f'environment="{name}",tier="{tier}"'
    lines = [
        f'lenses_environment_info{{{labels},display_name="{environment.get("display_name", "")}",'
        f'id="{environment.get("id", "")}",lrn="{environment.get("lrn", "")}"}} 1',
        f"lenses_environment_created_timestamp_seconds{{{labels}}} {_seconds(environment.get('created_at'))}",
    ]
    status = environment.get("status") or {}
    lines.append(f"lenses_environment_agent_connected{{{labels}}} {int(bool(status.get('agent_connected')))}")
    agent = status.get("agent") or {}
    about = agent.get("agent") or {}
    lines.append(
        f'lenses_environment_agent_info{{{labels},hostname="{about.get("hostname", "")}",'
        f'version="{about.get("version", "")}"}} 1'
    )
    for capability, enabled in (about.get("capabilities") or {}).items():
        lines.append(
            f'lenses_environment_agent_capability{{{labels},capability="{capability}"}} {int(enabled)}'
        )
    lines.append(
        f"lenses_environment_agent_roundtrip_seconds{{{labels}}} {agent.get('roundtrip_duration', 0) / 1e9}"
    )
    lines.append(
        f"lenses_environment_agent_updated_timestamp_seconds{{{labels}}} {_seconds(agent.get('updated_at'))}"
    )
    metrics = agent.get("metrics") or {}
    for section in SECTIONS:
        block = metrics.get(section) or {}
        for key, value in block.items():
            if key == "updated_at":
                lines.append(
                    f'lenses_environment_metrics_updated_timestamp_seconds{{{labels},section="{section}"}} '
                    f"{_seconds(value)}"
                )
            elif isinstance(value, int | float):
                lines.append(f"lenses_environment_{key}{{{labels}}} {value}")
            elif isinstance(value, str):
                lines.append(f'lenses_environment_{section}_info{{{labels},{key}="{value}"}} 1')
    return "\n".join(lines) + "\n"


def floor_seconds(events: Sequence[bytes], rounds: int = 3) -> dict[str, float]:
    """CPU seconds per event to decode and render every event, the best of `rounds` passes, and the series
    one event renders on average."""
    best = float("inf")
    lines = 0
    for _ in range(max(1, rounds)):
        started = time.process_time()
        lines = 0
        for data in events:
            lines += render(json.loads(data)).count("\n")
        best = min(best, time.process_time() - started)
    count = max(1, len(events))
    return {
        "per_event_seconds": best / count,
        "series_per_event": lines / count,
        "events": float(len(events)),
    }


async def capture_updates(
    session: aiohttp.ClientSession, url: str, token: str, wanted: int, seconds: float
) -> list[bytes]:
    """Up to `wanted` `environment_updated` events' data from the simulator's live stream (which ends its
    lines with `\\n`), for at most `seconds`; the snapshot sent on connect is skipped."""
    events: list[bytes] = []
    buffer = bytearray()
    scanned = 0
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    deadline = time.monotonic() + seconds
    async with session.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds + 60)
    ) as response:
        response.raise_for_status()
        async for chunk in response.content.iter_any():
            buffer += chunk
            while (end := buffer.find(b"\n\n", max(0, scanned - 1))) >= 0:
                frame, scanned = bytes(buffer[:end]), 0
                del buffer[: end + 2]
                if _event_name(frame) == b"environment_updated":
                    events.append(_data(frame))
            scanned = len(buffer)
            if len(events) >= wanted or time.monotonic() > deadline:
                break
    return events[:wanted]


def _event_name(frame: bytes) -> bytes:
    for line in frame.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return b"message"


def _data(frame: bytes) -> bytes:
    return b"\n".join(line[5:].removeprefix(b" ") for line in frame.split(b"\n") if line.startswith(b"data:"))
