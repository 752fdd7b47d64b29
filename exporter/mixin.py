"""The alert rules and Grafana dashboards, rendered for one installation: its scrape job's selector, its
thresholds, where it hosts the runbook and the sub-path Grafana is served under.

`lenses-hq-exporter mixin rules|dashboards` renders them from an installed package; the committed files in
the repository and the Kubernetes manifests are the same functions with the default settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.alerts.rules import LABEL_NAME, RUNBOOK_URL, AlertSettings, render

__all__ = ["AlertSettings", "DashboardSettings", "MixinError"]

RULE_FILE_NAME = "lenses-hq-exporter.rules.yml"

DEFAULT_RUNBOOK_URL = RUNBOOK_URL
"""Where the alerts' `runbook_url` annotations point (each alert adds its `#anchor`): set it to where the
installation hosts docs/runbook.md."""

DASHBOARDS_EXTRA = "lenses-hq-exporter[dashboards]"


class MixinError(Exception):
    """A setting the rules or dashboards cannot be rendered with: the message names it. Exits 2."""


@dataclass(frozen=True)
class DashboardSettings:
    """What an installation changes in the dashboards."""

    link_prefix: str = ""
    """Prepended to the dashboards' links to one another (`/d/...`), for a Grafana served under a
    sub-path (its `root_url` path, e.g. `/grafana`)."""
    runbook_url: str = DEFAULT_RUNBOOK_URL
    cluster_label: str = ""
    """A label (e.g. `cluster`) to select and keep in every query, with a variable of its own, when one
    Prometheus sees the exporters of several clusters (node-mixin's `showMultiCluster`); empty for none."""


def check_cluster_label(label: str, where: str) -> str:
    """A Prometheus label name (or nothing)."""
    if label and not LABEL_NAME.match(label):
        raise MixinError(f"{where}: expected a label name like cluster, got {label!r}")
    return label


def alert_settings(
    job_selector: str | None = None, changes: Mapping[str, str] | None = None, runbook_url: str | None = None
) -> AlertSettings:
    """The defaults with these changes (`changes` holds thresholds by name, as strings)."""
    values = dict(changes or {})
    if job_selector is not None:
        values["job_selector"] = job_selector
    if runbook_url is not None:
        values["runbook_url"] = runbook_url
    try:
        return AlertSettings().replace(**values)
    except (TypeError, ValueError) as error:
        raise MixinError(str(error)) from None


def render_rules(settings: AlertSettings | None = None) -> str:
    """The Prometheus rule file's text."""
    return render(settings or AlertSettings())


def dashboard_builders() -> Mapping[str, Callable[[], Any]]:
    """Every dashboard's builder by its uid (also its file name); needs grafana-foundation-sdk."""
    try:
        from exporter.dashboards import environment, exporter, fleet, flink_agents
    except ImportError as error:
        raise MixinError(
            f"dashboards: {error.name or 'grafana-foundation-sdk'} is not installed "
            f"(pip install '{DASHBOARDS_EXTRA}')"
        ) from None
    return {
        fleet.UID: fleet.build,
        environment.UID: environment.build,
        flink_agents.UID: flink_agents.build,
        exporter.UID: exporter.build,
    }


def dashboard_model(uid: str, settings: DashboardSettings | None = None) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model: panel ids numbered in layout order, links prefixed, and a
    link to the runbook."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    settings = settings or DashboardSettings()
    model: dict[str, Any] = json.loads(json.dumps(dashboard_builders()[uid]().build(), cls=JSONEncoder))
    next_id = 1
    for panel in model.get("panels", []):
        for item in [panel, *panel.get("panels", [])]:
            item["id"] = next_id
            next_id += 1
    model.setdefault("links", []).append(
        {
            "title": "Runbook",
            "type": "link",
            "url": settings.runbook_url,
            "icon": "doc",
            "targetBlank": True,
            "asDropdown": False,
            "includeVars": False,
            "keepTime": False,
            "tags": [],
            "tooltip": "What each alert means, how to check, what to do",
        }
    )
    if settings.link_prefix:
        _prefix_links(model, settings.link_prefix.rstrip("/"))
    if settings.cluster_label:
        _add_cluster(model, settings.cluster_label)
    return model


_JOB_MATCHER = 'job=~"$job"'
_GROUPING = re.compile(r"\b(by|on) \(")


def _add_cluster(model: dict[str, Any], label: str) -> None:
    """A `label` variable beside `job`, and every query selecting `label=~"$label"` and keeping `label` in
    each aggregation and match, so two clusters' series never merge."""
    matcher = f'{_JOB_MATCHER}, {label}=~"${label}"'

    def rewrite(expr: str) -> str:
        return _GROUPING.sub(rf"\1 ({label}, ", expr.replace(_JOB_MATCHER, matcher))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    node[key] = rewrite(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(model.get("panels", []))
    variables = model["templating"]["list"]
    walk(variables)
    job = next(variable for variable in variables if variable["name"] == "job")
    values = f"label_values(lenses_hq_exporter_build_info, {label})"
    cluster = {
        **json.loads(json.dumps(job)),
        "name": label,
        "label": label.capitalize(),
        "description": f"The {label}(s) whose exporters are shown.",
        "definition": values,
        "query": {"query": values, "refId": f"{label}-values"},
    }
    variables.insert(variables.index(job), cluster)


def _prefix_links(node: Any, prefix: str) -> None:
    """Every `url` that is a path of this Grafana (`/d/...`) gets the sub-path in front."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "url" and isinstance(value, str) and value.startswith("/"):
                node[key] = prefix + value
            else:
                _prefix_links(value, prefix)
    elif isinstance(node, list):
        for item in node:
            _prefix_links(item, prefix)


def render_dashboard(uid: str, settings: DashboardSettings | None = None) -> str:
    """One dashboard's JSON text, as committed."""
    model = dashboard_model(uid, settings)
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_dashboards(settings: DashboardSettings | None = None) -> dict[str, str]:
    """Every dashboard's JSON text by file name."""
    return {f"{uid}.json": render_dashboard(uid, settings) for uid in dashboard_builders()}


def check_link_prefix(prefix: str, where: str) -> str:
    """A URL path like /grafana (or nothing)."""
    if prefix and (not prefix.startswith("/") or any(c.isspace() or c in "?#\"'" for c in prefix)):
        raise MixinError(f"{where}: expected a path starting with / like /grafana, got {prefix!r}")
    return prefix
