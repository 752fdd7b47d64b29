"""The metric contract as the code declares it, and the metric names a PromQL expression uses.

Rules and dashboards may name only metrics the exporter declares: the Lenses and Confluent family
declarations, the self-metrics registry (counters exposed with `_total`), and Prometheus' own `up`.
"""

from __future__ import annotations

import re

from exporter.confluent import metrics as confluent_metrics
from exporter.lenses import metrics as lenses_metrics
from exporter.telemetry import Telemetry

QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
PREFIXED = re.compile(r"\b((?:lenses|confluent|process|python)_[a-zA-Z0-9_:]+)")
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_timeout_seconds"}


def lenses_names() -> set[str]:
    """Lenses HQ environment families (with the optional metadata family switched on)."""
    return {family.name for family in lenses_metrics.build_group(metadata_labels=["team"]).families}


def confluent_names() -> set[str]:
    """Confluent Flink agent families."""
    return {family.name for family in confluent_metrics.build_group(["team"]).families}


def self_names() -> set[str]:
    """The exporter's own metrics and the process/python collectors, as scraped."""
    return {
        family.name + "_total" if family.type == "counter" else family.name
        for family in Telemetry().registry.collect()
    }


def contract_names() -> set[str]:
    """Every metric name a rule or a dashboard may use."""
    return lenses_names() | confluent_names() | self_names() | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: every selector's name, and any bare name with our prefixes."""
    text = QUOTED.sub('""', expr)
    names = set(SELECTOR.findall(text)) | set(PREFIXED.findall(text))
    return {name for name in names if name not in {"by", "without", "on", "ignoring"}}
