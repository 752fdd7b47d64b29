"""docs/metrics.md is generated from the family declarations; the two must never differ."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter import docs

ROOT = Path(__file__).resolve().parents[2]


def test_metric_table_matches_the_code() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == docs.render(), "docs/metrics.md is stale: run `make docs`"


def test_every_metric_of_the_contract_is_documented() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name in (
        "lenses_environment_info",
        "lenses_environment_agent_connected",
        "lenses_environment_metrics_updated_timestamp_seconds",
        "lenses_environment_metadata_info",
        "confluent_flink_agent_status_phase",
        "confluent_flink_agent_tool_info",
        "lenses_hq_exporter_up",
        "lenses_hq_exporter_sse_events_total",
    ):
        assert f"`{name}`" in text, name


def test_every_documented_scrape_config_honours_the_exporters_labels() -> None:
    # `environment` and `tier` collide with target labels many teams set; without honor_labels Prometheus
    # renames the exporter's to `exported_environment` and every dashboard and alert loses them.
    blocks = [
        block
        for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
        for block in re.findall(r"```ya?ml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        if "job_name" in block
    ]
    assert blocks, "no scrape config documented"
    for block in blocks:
        for job in yaml.safe_load(block)["scrape_configs"]:
            assert job.get("honor_labels") is True, job
