"""`lenses-hq-exporter mixin rules|dashboards`: an installation's own alert rules and dashboards, equal to the
committed files with the default settings."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.mixin.dashboard_queries import queries, substitute
from tests.mixin.test_dashboards import SAMPLE_VALUES
from tests.service.test_cli import assert_usage_error, run_cli
from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]
RULE_FILE = ROOT / "alerts" / "lenses-hq-exporter.rules.yml"
DASHBOARD_FILES = sorted((ROOT / "dashboards").glob("*.json"))


def test_rules_with_the_defaults_are_the_committed_file(tmp_path: Path) -> None:
    result = run_cli("mixin", "rules", "--output", str(tmp_path))
    assert result.returncode == 0, result
    assert result.stdout.strip() == str(tmp_path / RULE_FILE.name)
    assert (tmp_path / RULE_FILE.name).read_text(encoding="utf-8") == RULE_FILE.read_text(encoding="utf-8")


def test_rules_take_a_job_selector_thresholds_and_the_runbook_address() -> None:
    result = run_cli(
        "mixin",
        "rules",
        '--job-selector=job=~"lenses.*"',
        "--set=stream_down_for=30m",
        "--runbook-url=https://runbooks.example.com/lenses",
        "--output=-",
    )
    assert result.returncode == 0, result
    alerts = [rule for group in yaml.safe_load(result.stdout)["groups"] for rule in group["rules"]]
    assert all('job=~"lenses.*"' in rule["expr"] for rule in alerts)
    assert {rule["for"] for rule in alerts if rule["alert"] == "LensesHQExporterStreamDown"} == {"30m"}
    assert all(
        rule["annotations"]["runbook_url"] == f"https://runbooks.example.com/lenses#{rule['alert'].lower()}"
        for rule in alerts
    )


def test_dashboards_with_the_defaults_are_the_committed_files(tmp_path: Path) -> None:
    result = run_cli("mixin", "dashboards", f"--output={tmp_path}")
    assert result.returncode == 0, result
    assert sorted(path.name for path in tmp_path.iterdir()) == [path.name for path in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        assert (tmp_path / path.name).read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def urls(node: object) -> list[str]:
    """Every `url` value in a dashboard model."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "url" and isinstance(v, str)] + [
            url for value in node.values() for url in urls(value)
        ]
    if isinstance(node, list):
        return [url for item in node for url in urls(item)]
    return []


def test_dashboards_under_a_grafana_sub_path_and_with_the_runbook(tmp_path: Path) -> None:
    result = run_cli(
        "mixin",
        "dashboards",
        "--link-prefix=/grafana",
        "--runbook-url=https://runbooks.example.com/lenses",
        f"--output={tmp_path}",
    )
    assert result.returncode == 0, result
    fleet = json.loads((tmp_path / "lenses-hq-fleet.json").read_text(encoding="utf-8"))
    found = urls(fleet)
    internal = [url for url in found if not url.startswith("https://")]
    assert internal and all(url.startswith("/grafana/d/") for url in internal), found
    assert "https://runbooks.example.com/lenses" in found


def test_dashboards_for_several_clusters_select_and_keep_the_cluster_label(tmp_path: Path) -> None:
    result = run_cli("mixin", "dashboards", "--cluster-label=cluster", f"--output={tmp_path}")
    assert result.returncode == 0, result
    rules = []
    for path in sorted(tmp_path.iterdir()):
        model = json.loads(path.read_text(encoding="utf-8"))
        variables = [variable["name"] for variable in model["templating"]["list"]]
        assert variables.index("cluster") == variables.index("job") - 1, path.name
        for _, target in queries(model):
            expr = target["expr"]
            for matchers in re.findall(r"[a-z_]+\{([^}]*)\}", expr):
                assert 'cluster=~"$cluster"' in matchers, (path.name, expr)
            for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
                assert grouping.startswith("cluster, "), (path.name, expr)
            rules.append(
                {"record": f"q:{len(rules)}", "expr": substitute(expr, {**SAMPLE_VALUES, "cluster": ".*"})}
            )
    checked = tmp_path / "queries.yml"
    checked.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))
    promtool = require_binary("promtool")
    outcome = subprocess.run(
        [promtool, "check", "rules", str(checked)], capture_output=True, text=True, check=False
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert all('"name": "cluster"' not in path.read_text(encoding="utf-8") for path in DASHBOARD_FILES)


def test_bad_mixin_options_exit_2_naming_them(tmp_path: Path) -> None:
    assert_usage_error(run_cli("mixin", "rules", "--set=agent_disconnected_for"), "--set")
    assert_usage_error(
        run_cli("mixin", "rules", "--set=agent_disconnected_for=soon"), "agent_disconnected_for"
    )
    assert_usage_error(run_cli("mixin", "rules", "--runbook-url=runbook.md"), "--runbook-url")
    assert_usage_error(run_cli("mixin", "dashboards", "--link-prefix=grafana"), "--link-prefix")
    assert_usage_error(run_cli("mixin", "dashboards", "--cluster-label=a-b"), "--cluster-label")
    assert_usage_error(run_cli("mixin"), "rules|dashboards")
