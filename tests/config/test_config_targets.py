"""Several HQs, include/exclude filters and metrics.allow/deny in the configuration file: what they read to,
and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load_settings
from tests.config.test_config import LENSES, TOKEN, error_of, load, write

TWO_HQS = f"""
lenses:
  targets:
    - name: hq-eu
      url: http://hq-eu.example.com/api
      token: {TOKEN}
      include: {{tier: production|staging}}
      exclude: {{environment: "sandbox-.*"}}
      metadata_labels: [team]
    - name: hq-us
      url: http://hq-us.example.com/api
      token_file: token
      roundtrip_duration_unit: ms
metrics:
  deny: [lenses_environment_agent_capability, "confluent_flink_agent_tool_*"]
"""

FLINK = """
confluent:
  targets:
    - name: flink-{index}
      url: https://flink.example.com
      organization_id: org-1
      environment_id: env-{index}
      api_key: key
      api_secret: secret
      labels: [{labels}]
"""


def test_two_hqs_each_with_their_own_settings(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("us-token")
    settings = load(tmp_path, TWO_HQS)
    assert [hq.name for hq in settings.hqs] == ["hq-eu", "hq-us"]
    eu, us = settings.hqs
    assert (eu.url, eu.metadata_labels, us.roundtrip_duration_unit) == (
        "http://hq-eu.example.com/api",
        ("team",),
        "ms",
    )
    assert us.token.get() == "us-token"
    assert eu.selection.keeps({"environment": "payments", "tier": "production"})
    assert not eu.selection.keeps({"environment": "payments", "tier": "development"})
    assert not eu.selection.keeps({"environment": "sandbox-1", "tier": "staging"})
    assert us.selection.keeps({"environment": "anything", "tier": ""})
    assert not settings.metrics.keeps("lenses_environment_agent_capability")
    assert not settings.metrics.keeps("confluent_flink_agent_tool_info")
    assert settings.metrics.keeps("confluent_flink_agent_tools")


def test_the_single_form_is_one_target(tmp_path: Path) -> None:
    settings = load(tmp_path, LENSES)
    assert [hq.name for hq in settings.hqs] == ["hq.example.com"]
    assert settings.metrics.keeps("lenses_environment_info")


def test_the_environment_only_quick_start_is_one_target() -> None:
    settings = load_settings(None, {"LENSES_HQ_URL": "http://hq:9991/api", "LENSES_HQ_TOKEN": TOKEN})
    assert [hq.name for hq in settings.hqs] == ["hq"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            TWO_HQS.replace("production|staging", "(production"),
            "lenses.targets[0].include.tier: bad regular expression '(production': missing ), unterminated",
        ),
        (
            TWO_HQS.replace("include: {tier:", "include: {team:"),
            "lenses.targets[0].include.team: unknown key",
        ),
        (
            TWO_HQS.replace('exclude: {environment: "sandbox-.*"}', "exclude: {environment: 3}"),
            "lenses.targets[0].exclude.environment: expected a regular expression, got a number",
        ),
        (
            TWO_HQS.replace("lenses_environment_agent_capability", "lenses_environment_agent_capabilities"),
            "metrics.deny[0]: unknown family 'lenses_environment_agent_capabilities' "
            "(did you mean lenses_environment_agent_capability?)",
        ),
        (
            TWO_HQS.replace("confluent_flink_agent_tool_*", "flink_*"),
            "metrics.deny[1]: glob matches no family 'flink_*'",
        ),
        (LENSES + "metrics: {allow: [up]}", "metrics.allow[0]: unknown family 'up'"),
        (TWO_HQS.replace("hq-us", "hq-eu"), "lenses.targets[1].name: duplicate target name 'hq-eu'"),
        (
            LENSES.replace("lenses:", "lenses:\n  targets: []"),
            "lenses.url: with lenses.targets, set it on each target instead",
        ),
        ("lenses: {targets: []}", "lenses.targets: expected at least one target"),
        (
            "lenses: {targets: [{url: 'http://hq/api', token: t}], url: 'http://x/api'}",
            "lenses.url: with lenses.targets, set it on each target instead",
        ),
        (
            FLINK.format(index=1, labels="team") + "      include: {agent: '['}",
            "confluent.targets[0].include.agent: bad regular expression '['",
        ),
        (
            FLINK.format(index=1, labels="team, cost.center, cost-center"),
            "confluent.targets[0].labels[2]: 'cost-center' and 'cost.center' "
            "(confluent.targets[0].labels[1]) both become the label label_cost_center",
        ),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "token").write_text("us-token")
    assert error_of(tmp_path, text).startswith(expected)


def test_labels_of_two_confluent_targets_that_collide_are_refused(tmp_path: Path) -> None:
    text = FLINK.format(index=1, labels="cost.center") + FLINK.format(index=2, labels="cost-center").replace(
        "confluent:\n  targets:\n", ""
    )
    message = error_of(tmp_path, text)
    assert message.startswith("confluent.targets[1].labels[0]: 'cost-center' and 'cost.center'"), message
    assert "label_cost_center" in message


def test_a_confluent_target_reads_its_labels_and_filters(tmp_path: Path) -> None:
    text = FLINK.format(index=1, labels="team, owner") + "      exclude: {kafka_cluster_id: lkc-test.*}\n"
    (target,) = load(tmp_path, text).confluent.targets
    assert target.labels == ("team", "owner")
    assert not target.selection.keeps({"agent": "a", "kafka_cluster_id": "lkc-test1"})
    assert target.selection.keeps({"agent": "a", "kafka_cluster_id": "lkc-prod1"})


def test_secrets_never_reach_an_error_about_a_target(tmp_path: Path) -> None:
    message = error_of(tmp_path, TWO_HQS.replace("hq-us", "hq-eu"))
    assert TOKEN not in message
    write(tmp_path, "x")
