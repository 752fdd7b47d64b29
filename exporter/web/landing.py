"""The landing page: what an operator opening the exporter in a browser needs first. Version and build,
every target's state, last success, objects, live stream and last error, and the links to follow.

Plain HTML with inline styles: no JavaScript, no external resource, every value escaped.
"""

from __future__ import annotations

import html
import platform
import time
from collections.abc import Iterable

from exporter import __version__
from exporter.config import format_duration
from exporter.health import Health, TargetStatus
from exporter.telemetry import Telemetry

DOCS_URL = "https://github.com/lenses-hq-exporter/lenses-hq-exporter#readme"
COLUMNS = ("source", "target", "state", "last success", "objects", "live stream", "reconnects", "last error")
STATE_COLOURS = {"up": "#1a7f37", "down": "#cf222e", "pending": "#9a6700"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
.build { color: #59636e; margin-top: 0; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin-top: 1rem; width: 100%; }
th, td { border: 1px solid #d1d9e0; padding: 0.4rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.state { font-weight: 600; }
td.error { font-family: ui-monospace, monospace; font-size: 0.85rem; word-break: break-word; }
"""


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def state_of(status: TargetStatus) -> str:
    """up, down, or pending (before the first sync finished)."""
    if not status.ready:
        return "pending"
    return "up" if status.up else "down"


def _sample(telemetry: Telemetry, name: str, labels: dict[str, str]) -> float | None:
    value = telemetry.registry.get_sample_value(name, labels)
    return None if value is None else float(value)


def cells(status: TargetStatus, telemetry: Telemetry, now: float) -> tuple[str, ...]:
    """One target's row, as plain text (escaped by the caller)."""
    age = f"{format_duration(now - status.last_success)} ago" if status.last_success else "never"
    objects = _sample(
        telemetry, "lenses_hq_exporter_objects", {"source": status.source, "target": status.name}
    )
    reconnects = None
    if status.source == "lenses":
        reconnects = _sample(telemetry, "lenses_hq_exporter_sse_reconnects_total", {"target": status.name})
    return (
        status.source,
        status.name,
        state_of(status),
        age,
        f"{objects:.0f}" if objects is not None else "—",
        status.stream or "—",
        f"{reconnects or 0:.0f}" if status.source == "lenses" else "—",
        status.last_error or "—",
    )


def _rows(statuses: Iterable[TargetStatus], telemetry: Telemetry, now: float) -> str:
    rows = []
    for status in statuses:
        values = cells(status, telemetry, now)
        state = values[2]
        rows.append(
            "<tr>"
            f"<td>{_text(values[0])}</td><td>{_text(values[1])}</td>"
            f'<td class="state" style="color: {STATE_COLOURS[state]}">{_text(state)}</td>'
            + "".join(f"<td>{_text(value)}</td>" for value in values[3:7])
            + f'<td class="error">{_text(values[7])}</td>'
            "</tr>"
        )
    if not rows:
        rows.append(f'<tr><td colspan="{len(COLUMNS)}">No target is configured.</td></tr>')
    return "\n".join(rows)


def render(health: Health, telemetry: Telemetry, telemetry_path: str, now: float | None = None) -> str:
    """The whole page."""
    now = time.time() if now is None else now
    heading = "".join(f"<th>{_text(column)}</th>" for column in COLUMNS)
    links = (
        (telemetry_path, "Metrics"),
        ("/healthz", "Health"),
        ("/readyz", "Readiness"),
        (DOCS_URL, "Documentation"),
    )
    navigation = "".join(f'<a href="{_text(href)}">{_text(label)}</a>' for href, label in links)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lenses-hq-exporter</title>
<style>{STYLE}</style>
</head>
<body>
<h1>lenses-hq-exporter</h1>
<p class="build">lenses-hq-exporter {_text(__version__)} · Python {_text(platform.python_version())}
({_text(platform.python_implementation())})</p>
<nav>{navigation}</nav>
<h2>Targets</h2>
<table>
<tr>{heading}</tr>
{_rows(health.targets.values(), telemetry, now)}
</table>
</body>
</html>
"""
