"""The dashboards: committed JSON equals what the code renders; grafana/dashboard-linter's Prometheus rules
hold; every query is valid PromQL naming only metrics of the contract; provisioning files are sound."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.generate import BUILDERS, OUTPUT, main, render
from tests.mixin.dashboard_queries import load, panels, queries, substitute
from tests.mixin.metric_contract import contract_names, metric_names
from tests.support import require_binary

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
CURRENT_SCHEMA_VERSION = 42  # Grafana 12
EXPECTED = {
    "lenses-hq-fleet.json": {"datasource", "job", "target", "tier", "environment"},
    "lenses-hq-environment.json": {"datasource", "job", "target", "tier", "environment"},
    "lenses-hq-flink-agents.json": {"datasource", "job", "tier", "environment"},
    "lenses-hq-exporter.json": {"datasource", "job", "instance", "target"},
}
"""Every dashboard and the variables it must offer."""

SAMPLE_VALUES = {
    "__rate_interval": "2m",
    "job": ".+",
    "tier": ".*",
    "environment": "payments",
    "instance": ".+",
    "target": ".*",
    "datasource": "prometheus",
}

DASHBOARDS = load()
ALL_QUERIES = [
    (name, title, target) for name, model in DASHBOARDS.items() for title, target in queries(model)
]


def ids(items: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [f"{name}:{title}:{target['refId']}" for name, title, target in items]


def test_the_dashboards_are_the_expected_ones() -> None:
    assert set(DASHBOARDS) == set(EXPECTED) == {f"{uid}.json" for uid in BUILDERS}


@pytest.mark.parametrize("uid", sorted(BUILDERS))
def test_committed_json_is_what_the_code_renders(uid: str) -> None:
    committed = (OUTPUT / f"{uid}.json").read_text()
    assert committed == render(uid), "run `python -m dashboards.generate` and commit"


def test_generator_writes_every_dashboard(tmp_path: Path) -> None:
    main(["--output", str(tmp_path)])
    assert {path.name for path in tmp_path.iterdir()} == set(EXPECTED)
    for path in tmp_path.iterdir():
        assert path.read_text() == (OUTPUT / path.name).read_text()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_settings(name: str) -> None:
    model = DASHBOARDS[name]
    assert model["uid"] == name.removesuffix(".json"), "uids are stable: links and bookmarks use them"
    assert model["schemaVersion"] == CURRENT_SCHEMA_VERSION
    assert model["title"] and model["description"]
    assert model["editable"] is False, "provisioned dashboards are changed in code"
    assert "lenses-hq" in model["tags"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_variables(name: str) -> None:
    """dashboard-linter's template rules: one `datasource` variable, every query variable on it, reloaded on
    time range change, and multi-valued ones (`job` first of all) with the all-value `.+`."""
    variables = {variable["name"]: variable for variable in DASHBOARDS[name]["templating"]["list"]}
    assert set(variables) == EXPECTED[name]
    assert [v["name"] for v in variables.values() if v["type"] == "datasource"] == ["datasource"]
    assert variables["job"]["multi"] and variables["job"]["includeAll"], "the job variable is multi-valued"
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    assert datasource["label"] == "Data source"
    for variable in variables.values():
        if variable["type"] != "query":
            continue
        assert variable["datasource"] == DATASOURCE_REF, variable["name"]
        assert variable["refresh"] == 2, f"{variable['name']} must reload on time range change"
        expr = variable["query"]["query"]
        assert expr.startswith("label_values("), variable["name"]
        if variable["name"] != "job":
            assert 'job=~"$job"' in expr, variable["name"]
        if variable.get("multi"):
            # Every series has a job and an instance (All is `.+`); a tier may be empty (All is `.*`).
            all_value = ".+" if variable["name"] in ("job", "instance") else ".*"
            assert variable["includeAll"] and variable["allValue"] == all_value, variable["name"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_panel_has_title_description_unit_and_the_datasource_variable(name: str) -> None:
    seen_ids = set()
    for panel in panels(DASHBOARDS[name]):
        title = panel.get("title")
        assert title, panel
        assert panel.get("description"), title
        assert panel["fieldConfig"]["defaults"].get("unit"), title
        assert panel["datasource"] == DATASOURCE_REF, title
        assert panel["targets"], title
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, title
        assert panel["id"] not in seen_ids
        seen_ids.add(panel["id"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARDS[name]["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


@pytest.mark.parametrize(("name", "title", "target"), ALL_QUERIES, ids=ids(ALL_QUERIES))
def test_query_filters_on_job_and_uses_rate_interval(name: str, title: str, target: dict[str, Any]) -> None:
    expr = target["expr"]
    selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
    assert selectors, expr
    for metric, matchers in selectors:
        assert 'job=~"$job"' in matchers, f"{metric} does not filter on $job"
    for function in re.findall(r"\b(rate|irate|increase|delta|[a-z]+_over_time)\(", expr):
        assert function in {"rate", "increase"}, f"{function}() in {expr}"
    for window in re.findall(r"\[([^\]]+)\]", expr):
        assert window == "$__rate_interval", expr


def test_queries_name_only_metrics_of_the_contract() -> None:
    known = contract_names()
    used = {metric for _, _, target in ALL_QUERIES for metric in metric_names(target["expr"])}
    used |= {
        metric
        for model in DASHBOARDS.values()
        for variable in model["templating"]["list"]
        if variable["type"] == "query"
        for metric in metric_names(variable["query"]["query"])
    }
    assert len(used) > 30
    assert used - known == set()


def test_every_contract_family_has_a_panel() -> None:
    """Nothing the exporter exposes for users is left off the dashboards (bar the opt-in metadata)."""
    used = {metric for _, _, target in ALL_QUERIES for metric in metric_names(target["expr"])}
    wanted = {
        name
        for name in contract_names()
        if name.startswith(("lenses_environment_", "confluent_flink_agent_"))
        and name not in ("lenses_environment_metadata_info", "confluent_flink_agent_labels_info")
    }
    assert wanted - used == set()


@pytest.mark.parametrize("name", ["lenses-hq-fleet.json", "lenses-hq-environment.json"])
def test_environments_are_listed_with_their_hq_and_display_name(name: str) -> None:
    for title, target in queries(DASHBOARDS[name]):
        for metric, matchers in re.findall(r"(lenses_environment_[a-z_]+)\{([^}]*)\}", target["expr"]):
            assert 'target=~"$target"' in matchers, (title, metric)
        for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", target["expr"]):
            if "environment" in grouping:
                assert grouping.startswith("target, environment"), (title, grouping)
    tables = [panel for panel in panels(DASHBOARDS[name]) if panel["type"] == "table"]
    assert any(
        "display_name" in json.dumps(panel) and "lenses_environment_info" in json.dumps(panel)
        for panel in tables
    )
    variable = next(v for v in DASHBOARDS[name]["templating"]["list"] if v["name"] == "target")
    assert variable["multi"] and variable["includeAll"] and variable["label"] == "HQ"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Each query, variables substituted, as a recording rule: promtool parses every expression."""
    promtool = require_binary("promtool")
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute(target["expr"], SAMPLE_VALUES)}
        for index, (_, _, target) in enumerate(ALL_QUERIES)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_substitute_replaces_both_variable_forms() -> None:
    assert substitute('x{job=~"$job", a="${tier}"}[$__rate_interval]', SAMPLE_VALUES) == (
        'x{job=~".+", a=".*"}[2m]'
    )


def test_provisioning_files() -> None:
    provisioning = OUTPUT / "provisioning"
    dashboards = yaml.safe_load((provisioning / "dashboards.yml").read_text())
    assert dashboards["apiVersion"] == 1
    (provider,) = dashboards["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    datasources = yaml.safe_load((provisioning / "datasources.example.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["jsonData"]["timeInterval"], "$__rate_interval needs the scrape interval"
