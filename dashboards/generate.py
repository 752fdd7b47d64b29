"""Render every dashboard to `dashboards/<uid>.json`: `python -m dashboards.generate`.

The JSON files are committed so Grafana can provision them without Python; a test checks they equal what
this renders, so edit the Python, never the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import environment, exporter, fleet, flink_agents

OUTPUT = Path(__file__).parent

BUILDERS: dict[str, Callable[[], dashboard.Dashboard]] = {
    fleet.UID: fleet.build,
    environment.UID: environment.build,
    flink_agents.UID: flink_agents.build,
    exporter.UID: exporter.build,
}
"""Every dashboard by its uid (also its file name)."""


def as_dict(builder: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, with panel ids numbered in layout order."""
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    next_id = 1
    for panel in model.get("panels", []):
        for item in [panel, *panel.get("panels", [])]:
            item["id"] = next_id
            next_id += 1
    return model


def render(uid: str) -> str:
    """One dashboard's JSON text, as committed."""
    return json.dumps(as_dict(BUILDERS[uid]()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard's JSON into the output directory."""
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="directory to write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for uid in BUILDERS:
        (args.output / f"{uid}.json").write_text(render(uid), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
