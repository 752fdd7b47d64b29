"""Reading the committed dashboards: every panel's queries, and Grafana's variable substitution."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def load() -> dict[str, dict[str, Any]]:
    """Every committed dashboard by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows excluded), including panels inside collapsed rows."""
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(model: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel."""
    for panel in panels(model):
        for target in panel.get("targets", []):
            yield panel["title"], target


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace `$name` and `${name}` the way Grafana does (longest names first)."""
    names = "|".join(re.escape(name) for name in sorted(values, key=len, reverse=True))
    return re.sub(r"\$\{(" + names + r")\}|\$(" + names + r")\b", lambda m: values[m[1] or m[2]], expr)
