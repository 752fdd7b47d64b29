"""Generates docs/metrics.md from the family declarations and the self-metric declarations, so docs cannot
drift.

Run `python -m exporter.docs > docs/metrics.md` (or `make docs`); a test fails when the two differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.confluent import metrics as confluent_metrics
from exporter.confluent.model import MAX_TOOLS
from exporter.decode import CUT_MARKER, MAX_LABEL_BYTES
from exporter.exposition.families import FamilyGroup
from exporter.lenses import metrics as lenses_metrics
from exporter.lenses.model import MAX_CAPABILITIES
from exporter.telemetry import Telemetry

HEADER = f"""# Metrics

Generated from the code by `make docs`; do not edit by hand. Every series of a family has the same label
names; a value missing upstream drops only the series it feeds.

Label values taken from upstream are bounded: a value over {MAX_LABEL_BYTES} bytes of UTF-8 is cut and ends
with `{CUT_MARKER}`, invalid UTF-8 and lone surrogates read as U+FFFD, an agent keeps at most
{MAX_CAPABILITIES} capabilities and {MAX_TOOLS} tools, and only the metadata keys in
`lenses.metadata_labels` are kept. Each cut is counted in `lenses_hq_exporter_invalid_fields_total` under the
field's name. Two objects whose names read the same once made label values never share a series: the first
listed is kept, the other dropped and counted in `lenses_hq_exporter_invalid_objects_total`.
"""


def _table(rows: Iterable[tuple[str, str, str, str]]) -> str:
    lines = ["| metric | type | labels | help |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {kind} | {labels} | {text} |" for name, kind, labels, text in rows]
    return "\n".join(lines) + "\n"


def _group_rows(group: FamilyGroup[Any]) -> Iterable[tuple[str, str, str, str]]:
    for family in group.families:
        labels = ", ".join(f"`{label}`" for label in family.labels) or "—"
        yield family.name, family.type, labels, family.help.replace("|", "\\|")


def _self_rows() -> Iterable[tuple[str, str, str, str]]:
    for metric in Telemetry.declarations():
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        yield metric.exposed_name, metric.exposition_type, labels, metric.help.replace("|", "\\|")


def render() -> str:
    """The whole metrics page."""
    lenses = lenses_metrics.build_group(metadata_labels=["<key>"])
    return "\n".join(
        [
            HEADER,
            "## Lenses HQ environments",
            "",
            "Every series also has `" + "`, `".join(lenses_metrics.COMMON_LABELS) + "`. "
            "`lenses_environment_metadata_info` exists only when `lenses.metadata_labels` lists keys; each "
            "becomes a label `metadata_<key>` (characters other than letters, digits and `_` become `_`). "
            "`target` is the configured HQ's name, so two HQs with an environment of the same name never "
            "merge and every series joins `lenses_hq_exporter_up` `on (target)`.",
            "",
            "Each target's `include` / `exclude` regular expressions (on `environment` and `tier` here, on "
            "`agent` and `kafka_cluster_id` for Confluent targets) decide which objects are exported, and "
            "`metrics.allow` / `metrics.deny` which families: what they leave out is never rendered, so it "
            "costs nothing per scrape. `lenses_hq_exporter_objects` counts what is kept, "
            "`lenses_hq_exporter_objects_filtered` what is skipped.",
            "",
            "`lenses_environment_agent_connected` is 1 or 0 only when HQ reports a boolean; when "
            "`status.agent_connected` is missing, null or not a boolean the series is absent (unknown is "
            'never "disconnected") and '
            '`lenses_hq_exporter_invalid_fields_total{field="agent_connected"}` counts it. '
            "The two transition counters count every change the exporter sees, on the live stream "
            "(several between two scrapes included) and between two listings; they start at 0 when the "
            "environment first appears, go with it, and restart with the exporter like any counter "
            "(`increase()` and `rate()` handle the reset). A change through an unknown state still counts "
            "(connected, unknown, disconnected is one disconnect).",
            "",
            "Numbers may arrive as decimal strings and are read as numbers; a time before 2000 "
            "(Go's zero time) is absent; a negative count, byte figure or rate is dropped and counted under "
            "`lenses_hq_exporter_invalid_fields_total` with the field's name.",
            "",
            _table(_group_rows(lenses)),
            "## Confluent Flink agents",
            "",
            "Every series also has `" + "`, `".join(confluent_metrics.COMMON_LABELS) + "`. "
            "`confluent_flink_agent_labels_info` exists only when a target's `labels` lists "
            "`metadata.labels` keys; each becomes a label `label_<key>` (sanitised like `metadata_<key>`).",
            "",
            _table(_group_rows(confluent_metrics.build_group(["<key>"]))),
            "## The exporter itself",
            "",
            "Plus the standard `process_*` and `python_*` collectors. Every labelled counter exists at 0 "
            "from the start for each label set known in advance (each bounded failure reason per endpoint, "
            "reconnects and each known event name per live stream, invalid objects per target, each "
            "droppable field per Lenses target), so `rate()` and `increase()` see the first increment and a "
            "healthy dashboard shows 0. `lenses_hq_exporter_last_error_info` has one series per target whose "
            "last sync failed, none once it succeeds.",
            "",
            _table(_self_rows()),
        ]
    )


if __name__ == "__main__":
    print(render(), end="")
