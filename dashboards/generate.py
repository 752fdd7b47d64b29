"""Render every dashboard to `dashboards/<uid>.json`: `python -m dashboards.generate`.

The JSON files are committed so Grafana can provision them without Python; a test checks they equal what
this renders, so edit the Python, never the JSON. An installed package renders its own copies with
`lenses-hq-exporter mixin dashboards` (same options).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporter.mixin import (
    DEFAULT_RUNBOOK_URL,
    DashboardSettings,
    MixinError,
    check_cluster_label,
    check_link_prefix,
    dashboard_builders,
    render_dashboard,
    render_dashboards,
)

OUTPUT = Path(__file__).parent

BUILDERS = dashboard_builders()
"""Every dashboard's builder by its uid (also its file name)."""


def render(uid: str) -> str:
    """One dashboard's JSON text, as committed."""
    return render_dashboard(uid)


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard's JSON into the output directory."""
    parser = argparse.ArgumentParser(
        prog="python -m dashboards.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--output", type=Path, default=OUTPUT, help="directory to write (default: %(default)s)"
    )
    parser.add_argument("--link-prefix", default="", help="Grafana's sub-path, e.g. /grafana (default: none)")
    parser.add_argument(
        "--runbook-url", default=DEFAULT_RUNBOOK_URL, help="the runbook (default: %(default)s)"
    )
    parser.add_argument(
        "--cluster-label",
        default="",
        help="a label (e.g. cluster) every query selects and keeps, with its own variable (default: none)",
    )
    args = parser.parse_args(argv)
    try:
        settings = DashboardSettings(
            check_link_prefix(args.link_prefix, "--link-prefix"),
            args.runbook_url,
            check_cluster_label(args.cluster_label, "--cluster-label"),
        )
    except MixinError as error:
        parser.error(str(error))
    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in render_dashboards(settings).items():
        (args.output / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
