"""Write the alert rule file: `python -m alerts.generate [--job-selector ...] [--set name=value ...]`.

Without options it rewrites the committed `alerts/lenses-hq-exporter.rules.yml`; with `--output -` it
prints to stdout, e.g. for a deployment whose scrape job has another name (an installed package renders the
same with `lenses-hq-exporter mixin rules`):

    python -m alerts.generate --job-selector 'job="lenses"' --set agent_disconnected_for=15m --output -
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporter.alerts.rules import AlertSettings, render

RULE_FILE = Path(__file__).parent / "lenses-hq-exporter.rules.yml"


def main(argv: list[str] | None = None) -> int:
    """Parse options, render the rules, write them."""
    parser = argparse.ArgumentParser(prog="python -m alerts.generate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--job-selector",
        default=AlertSettings.job_selector,
        help="label matchers selecting the exporter's scrape job (default: %(default)s)",
    )
    parser.add_argument(
        "--runbook-url",
        default=AlertSettings.runbook_url,
        help="where docs/runbook.md is hosted; each alert links to its section (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one threshold, e.g. agent_disconnected_for=15m (repeatable)",
    )
    parser.add_argument("--output", default=str(RULE_FILE), help="file to write, or - for stdout")
    args = parser.parse_args(argv)
    changes: dict[str, str] = {"job_selector": args.job_selector, "runbook_url": args.runbook_url}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected NAME=VALUE")
        changes[name.strip()] = value.strip()
    try:
        text = render(AlertSettings().replace(**changes))
    except ValueError as error:
        parser.error(str(error))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
