"""The alert rules: generated file up to date, valid for promtool, unit-tested case by case, well formed,
naming only contract metrics, overridable; the example Alertmanager configuration routes and inhibits."""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from alerts import generate
from exporter.alerts.groups import PREFIX
from exporter.alerts.rules import RUNBOOK_URL, AlertSettings, render, rule_file
from tests.mixin.metric_contract import contract_names, metric_names
from tests.support import eventually, free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULE_FILE = ALERTS / "lenses-hq-exporter.rules.yml"
ALERTMANAGER_CONFIG = ALERTS / "alertmanager.example.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
SEVERITIES = {"critical", "warning", "info"}


def alert_rules(text: str | None = None) -> list[dict[str, Any]]:
    """Every alerting rule of a rule file (the committed one by default)."""
    data = yaml.safe_load(text if text is not None else RULE_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_committed_rule_file_is_what_the_generator_renders() -> None:
    assert RULE_FILE.read_text() == render(AlertSettings()), "run `python -m alerts.generate` and commit"


def test_promtool_check_rules_is_clean() -> None:
    result = run(require_binary("promtool"), "check", "rules", str(RULE_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "WARNING" not in (result.stdout + result.stderr).upper()


def test_promtool_unit_tests_pass() -> None:
    tests = sorted((ALERTS / "tests").glob("*.yml"))
    assert tests
    result = run(require_binary("promtool"), "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_promtool_cases_that_fire_and_that_stay_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (ALERTS / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case where they do not fire (yet)"


def test_the_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "LensesHQAgentDisconnected",
        "LensesHQAgentMetricsStale",
        "LensesHQAgentRoundtripHigh",
        "LensesHQKafkaBrokersDropped",
        "LensesHQIssuesReported",
        "LensesHQExporterUpstreamDown",
        "LensesHQExporterStreamDown",
        "LensesHQExporterRateLimited",
        "LensesHQExporterAbsent",
        "LensesHQExporterInstanceDown",
        "LensesHQFlinkAgentLeftRunning",
        "LensesHQFlinkAgentUnknownPhase",
        "LensesHQAgentConnectivityUnknown",
        "LensesHQAgentFlapping",
        "LensesHQExporterDroppingObjects",
    } <= names


def test_upstream_down_pages_like_exporter_absent() -> None:
    severities = {
        rule["labels"]["severity"]
        for rule in alert_rules()
        if rule["alert"] == "LensesHQExporterUpstreamDown"
    }
    assert "critical" in severities
    absent = next(rule for rule in alert_rules() if rule["alert"] == "LensesHQExporterAbsent")
    assert absent["labels"]["severity"] == "critical"


NON_PRODUCTION_CASE = """
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'lenses_hq_exporter_up{job="lenses-hq-exporter", source="confluent", target="dev"}'
        values: '0x20'
      - series: 'lenses_hq_exporter_up{job="lenses-hq-exporter", source="confluent", target="prod"}'
        values: '0x20'
      - series: 'lenses_hq_exporter_up{job="lenses-hq-exporter", source="lenses", target="dev"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: LensesHQExporterUpstreamDown
        exp_alerts:
          - exp_labels: {severity: warning, source: confluent, target: dev}
            exp_annotations: &annotations
              summary: The exporter cannot sync an upstream; its series are frozen.
              description: DESCRIPTION
              runbook_url: RUNBOOK
          - exp_labels: {severity: critical, source: confluent, target: prod}
          - exp_labels: {severity: critical, source: lenses, target: dev}
"""


def test_a_non_production_confluent_target_down_is_a_warning(tmp_path: Path) -> None:
    settings = AlertSettings().replace(non_production_targets="dev|stg")
    (tmp_path / "rules.yml").write_text(render(settings))
    case = yaml.safe_load(NON_PRODUCTION_CASE)
    expected = case["tests"][0]["alert_rule_test"][0]["exp_alerts"]
    rule = next(
        rule for rule in rule_file(settings)["groups"][2]["rules"] if rule["alert"].endswith("UpstreamDown")
    )
    for alert in expected:
        labels = alert["exp_labels"]
        alert["exp_annotations"] = {
            "summary": rule["annotations"]["summary"],
            "description": rule["annotations"]["description"]
            .replace("{{ $labels.source }}", labels["source"])
            .replace("{{ $labels.target }}", labels["target"])
            .replace("{{ $value }}", "0"),
            "runbook_url": rule["annotations"]["runbook_url"],
        }
    (tmp_path / "case.yml").write_text(yaml.safe_dump(case))
    result = run(require_binary("promtool"), "test", "rules", str(tmp_path / "case.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_well_formed() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert re.fullmatch(PREFIX + r"(?:[A-Z][a-z0-9]*)+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook_url"}, name
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert rule.get("for"), f"{name} has no `for`: one bad sample would page"
        if name != "LensesHQExporterAbsent":  # absent() has no value worth showing
            assert "$value" in annotations["description"], name
        # The labels an alert is aggregated by (bar the organization id) are named in its description.
        kept = re.search(r"\bby \(([^)]*)\)", rule["expr"])
        for label in kept.group(1).split(", ") if kept else []:
            if label != "organization_id":
                assert f"$labels.{label}" in annotations["description"], (name, label)


def test_every_selector_uses_the_job_selector_and_aggregates_instances_away() -> None:
    # Each selector sits directly in an aggregation `by (...)` (or absent()), possibly through a range
    # function: two replicas under one job, or shards, then yield one alert, not one per instance.
    wrapped = re.compile(r"(?:\bby \([^)]*\) \(|\babsent\()\s*(?:(?:rate|increase|max_over_time)\()?$")
    for rule in alert_rules():
        expr = rule["expr"]
        selectors = list(re.finditer(r"[a-z_]+\{([^}]*)\}", expr))
        assert selectors, rule["alert"]
        for selector in selectors:
            assert selector.group(1).startswith('job="lenses-hq-exporter"'), (
                rule["alert"],
                selector.group(0),
            )
            assert wrapped.search(expr[: selector.start()]), (rule["alert"], selector.group(0))


def test_agent_disconnected_is_critical_in_production_and_a_warning_elsewhere() -> None:
    for name in ("LensesHQAgentDisconnected", "LensesHQKafkaBrokersDropped"):
        severities = {
            rule["labels"]["severity"]: rule["expr"] for rule in alert_rules() if rule["alert"] == name
        }
        assert set(severities) == {"critical", "warning"}
        assert 'tier="production"' in severities["critical"]
        assert 'tier!="production"' in severities["warning"]


def test_rules_name_only_metrics_of_the_contract() -> None:
    known = contract_names()
    used = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    assert used, "no metric names found: the parser is broken"
    assert used - known == set()


def test_metric_check_catches_a_name_outside_the_contract() -> None:
    assert metric_names('max by (environment) (lenses_environment_agent_online{job="x"})') - contract_names()


def runbook_anchors() -> dict[str, str]:
    """GitHub's anchor for every `## ` heading of the runbook, and the section under it."""
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.MULTILINE)[1:]
    anchors = {}
    for section in sections:
        heading, _, body = section.partition("\n")
        anchor = re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        anchors[anchor] = body
    return anchors


def test_every_alert_links_to_its_runbook_section_which_says_meaning_check_act() -> None:
    anchors = runbook_anchors()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == RUNBOOK_URL
        assert anchor in anchors, f"docs/runbook.md has no section for {rule['alert']}"
        body = anchors[anchor]
        for part in ("**Meaning.**", "**Check.**", "**Act.**"):
            assert part in body, (rule["alert"], part)


def test_generator_overrides_job_selector_and_thresholds(tmp_path: Path) -> None:
    output = tmp_path / "rules.yml"
    generate.main(
        [
            "--job-selector",
            'job="lenses", cluster="eu-1"',
            "--set",
            "agent_disconnected_for=17m",
            "--set",
            "agent_roundtrip_seconds=2.5",
            "--output",
            str(output),
        ]
    )
    text = output.read_text()
    assert 'job="lenses-hq-exporter"' not in text
    rules = alert_rules(text)
    for rule in rules:
        for matchers in re.findall(r"[a-z_]+\{([^}]*)\}", rule["expr"]):
            assert matchers.startswith('job="lenses", cluster="eu-1"')
    disconnected = [rule for rule in rules if rule["alert"] == "LensesHQAgentDisconnected"]
    assert {rule["for"] for rule in disconnected} == {"17m"}
    assert all("17m" in rule["annotations"]["description"] for rule in disconnected)
    roundtrip = next(rule for rule in rules if rule["alert"] == "LensesHQAgentRoundtripHigh")
    assert "> 2.5\n" in roundtrip["expr"]
    result = run(require_binary("promtool"), "check", "rules", str(output))
    assert result.returncode == 0, result.stdout + result.stderr


def test_environment_alerts_aggregate_by_target_and_name_the_hq() -> None:
    for rule in alert_rules():
        if "lenses_environment_" not in rule["expr"]:
            continue
        for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            if "environment" in grouping:
                assert grouping.startswith("target, environment, tier"), (rule["alert"], grouping)
        assert "$labels.target" in rule["annotations"]["description"], rule["alert"]
        assert "$labels.display_name" in rule["annotations"]["description"], rule["alert"]


def test_a_cluster_label_is_kept_by_every_aggregation(tmp_path: Path) -> None:
    output = tmp_path / "rules.yml"
    generate.main(["--set", "cluster_label=cluster", "--output", str(output)])
    rules = alert_rules(output.read_text())
    for rule in rules:
        for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            assert "cluster" in [label.strip() for label in grouping.split(",")], (rule["alert"], grouping)
    assert ", cluster)" not in render()
    result = run(require_binary("promtool"), "check", "rules", str(output))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_cluster_label_must_be_a_label_name() -> None:
    with pytest.raises(ValueError, match="cluster_label"):
        AlertSettings(cluster_label="cluster-name")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("agent_disconnected_for=soon", "agent_disconnected_for: expected a Prometheus duration"),
        ("agent_roundtrip_seconds=-1", "agent_roundtrip_seconds: expected a number above 0"),
        ("disconnect_after=5m", "unknown setting disconnect_after"),
        ("novalue", "expected NAME=VALUE"),
    ],
)
def test_generator_rejects_bad_overrides_naming_the_field(
    option: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["--set", option, "--output", "-"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_job_selector_must_be_matchers_without_braces() -> None:
    with pytest.raises(ValueError, match="job_selector"):
        AlertSettings(job_selector='{job="x"}')


def test_rule_file_data_and_text_agree() -> None:
    assert yaml.safe_load(render()) == rule_file()


# --- Alertmanager example ----------------------------------------------------------------------------


def test_alertmanager_example_passes_amtool_check_config() -> None:
    result = run(require_binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=LensesHQAgentDisconnected", "severity=critical", "tier=production"], "pager"),
        (["alertname=LensesHQExporterAbsent", "severity=critical"], "pager"),
        (["alertname=LensesHQAgentDisconnected", "severity=critical", "tier=staging"], "chat"),
        (["alertname=LensesHQIssuesReported", "severity=warning", "tier=production"], "chat-production"),
        (["alertname=LensesHQAgentDisconnected", "severity=warning", "tier=development"], "chat"),
        (["alertname=LensesHQExporterStreamDown", "severity=info"], "tickets"),
    ],
)
def test_alertmanager_example_routes_by_severity_and_tier(labels: list[str], receiver: str) -> None:
    result = run(
        require_binary("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


@pytest.fixture
async def alertmanager() -> AsyncIterator[str]:
    """A real Alertmanager running the example configuration; yields its base URL."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    with tempfile.TemporaryDirectory() as storage:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient() as client:

                async def ready() -> bool:
                    try:
                        return (await client.get(f"{url}/-/ready")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(ready, what="alertmanager ready")
            yield url
        finally:
            process.kill()
            await process.wait()


async def test_alertmanager_example_inhibits_warnings_of_an_environment_with_a_critical(
    alertmanager: str,
) -> None:
    now = datetime.now(UTC)
    window = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}

    def alert(name: str, severity: str, environment: str, target: str = "hq-eu") -> dict[str, Any]:
        labels = {
            "alertname": name,
            "severity": severity,
            "target": target,
            "environment": environment,
            "tier": "production",
        }
        return {"labels": labels, **window}

    async with httpx.AsyncClient(base_url=alertmanager) as client:
        posted = await client.post(
            "/api/v2/alerts",
            json=[
                alert("LensesHQAgentDisconnected", "critical", "payments"),
                alert("LensesHQIssuesReported", "warning", "payments"),
                alert("LensesHQIssuesReported", "warning", "orders"),
                alert("LensesHQIssuesReported", "warning", "payments", target="hq-us"),
            ],
        )
        assert posted.status_code == 200

        async def states() -> dict[tuple[str, str, str], list[str]] | None:
            listed = (await client.get("/api/v2/alerts")).json()
            found = {
                (item["labels"]["alertname"], item["labels"]["target"], item["labels"]["environment"]): item[
                    "status"
                ]["inhibitedBy"]
                for item in listed
            }
            ready = len(found) == 4 and found[("LensesHQIssuesReported", "hq-eu", "payments")]
            return found if ready else None

        found = await eventually(states, what="the payments warning to be inhibited")
    assert found[("LensesHQAgentDisconnected", "hq-eu", "payments")] == []
    assert found[("LensesHQIssuesReported", "hq-eu", "orders")] == []
    # Another HQ's environment of the same name is another environment: its warning stays.
    assert found[("LensesHQIssuesReported", "hq-us", "payments")] == []
