"""What every dashboard shares: the Prometheus data source variable, the `job` filter, panel and query
helpers that always set a title, description, unit and `${datasource}`, so the lint rules hold by
construction (and `tests/mixin/test_dashboards.py` checks they do)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel and query points at the `datasource` variable, never at a fixed data source."""

JOB = 'job=~"$job"'
"""The matcher every selector carries."""

TAGS = ["lenses-hq"]

ON_TIME_RANGE_CHANGE = model.VariableRefresh.ON_TIME_RANGE_CHANGED

TARGET_LABELS = ("job", "instance")
"""Labels every scraped series has: their variables' All is `.+`, as dashboard-linter requires. Other labels
may be empty (a Confluent target without a tier), so their All is `.*`, which keeps those series."""

RED, AMBER, GREEN, BLUE = "red", "orange", "green", "blue"


def datasource_variable() -> dashboard.DatasourceVariable:
    """The `datasource` variable: any Prometheus data source."""
    return (
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("The Prometheus that scrapes lenses-hq-exporter.")
    )


def label_variable(
    name: str,
    label: str,
    query: str,
    description: str,
    *,
    multi: bool = True,
) -> dashboard.QueryVariable:
    """A variable listing one label's values; multi-valued ones default to All, matching any value."""
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query({"query": query, "refId": f"{name}-values"})
        .definition(query)
        .refresh(ON_TIME_RANGE_CHANGE)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = (
            variable.multi(True)
            .include_all(True)
            .all_value(".+" if name in TARGET_LABELS else ".*")
            .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    return variable


def job_variable() -> dashboard.QueryVariable:
    """The `job` variable: every scrape job that serves lenses-hq-exporter's build info."""
    return label_variable(
        "job",
        "Job",
        "label_values(lenses_hq_exporter_build_info, job)",
        "The Prometheus job(s) scraping lenses-hq-exporter.",
    )


def target_variable() -> dashboard.QueryVariable:
    """The `target` variable: the Lenses HQs (as the exporter names them) whose environments are shown."""
    return label_variable(
        "target",
        "HQ",
        f'label_values(lenses_hq_exporter_up{{{JOB}, source="lenses"}}, target)',
        "The Lenses HQ(s), by the name the exporter's configuration gives them (the `target` label).",
    )


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """A dashboard with the common settings: stable uid, tags, time range, links to its siblings."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .readonly()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dashboard.DashboardLink("Lenses HQ dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, table_format: bool = False
) -> prometheus.Dataquery:
    """A Prometheus query on `${datasource}`: a range query, or an instant one (for tables and stats)."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    target = target.instant() if instant else target.range()
    if table_format:
        target = target.format(prometheus_model.PromQueryFormat.TABLE)
    return target


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def value_texts(texts: dict[str, tuple[str, str]]) -> list[model.ValueMapping]:
    """Value mappings: raw value → (display text, colour)."""
    return [
        model.ValueMap(
            options={
                value: model.ValueMappingResult(text=text, color=color, index=index)
                for index, (value, (text, color)) in enumerate(texts.items())
            }
        )
    ]


CONNECTED = value_texts({"1": ("connected", GREEN), "0": ("disconnected", RED)})
UP = value_texts({"1": ("up", GREEN), "0": ("down", RED)})
STREAM = value_texts({"1": ("open", GREEN), "0": ("closed", RED)})


def timeseries_panel(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    span: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    """A time series with a table legend (last and max values)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .span(span)
        .height(height)
        .min(0)
        .fill_opacity(10)
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        ).fill_opacity(40)
    return panel


def stat_panel(
    title: str,
    description: str,
    unit: str,
    target: prometheus.Dataquery,
    *,
    span: int = 4,
    height: int = 4,
    steps: Sequence[tuple[float | None, str]] = ((None, BLUE),),
    mappings: list[model.ValueMapping] | None = None,
    no_value: str = "0",
    graph: bool = False,
    text_name: bool = False,
    calc: str = "lastNotNull",
) -> stat.Panel:
    """A single number (the last value, or another reduction: `delta` is a counter's increase over the
    dashboard's time range, resets included); `no_value` shows when the query matches nothing."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(target)
        .span(span)
        .height(height)
        .no_value(no_value)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA if graph else common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs([calc]).values(False))
    )
    if mappings:
        panel = panel.mappings(mappings)
    if text_name:
        panel = panel.text_mode(common.BigValueTextMode.NAME)
    return panel


def bargauge_panel(
    title: str,
    description: str,
    unit: str,
    target: prometheus.Dataquery,
    *,
    span: int = 8,
    height: int = 8,
    calc: str = "lastNotNull",
) -> bargauge.Panel:
    """Horizontal bars, one per series (counts by tier, phase, model, ...), each its last value or another
    reduction (`delta`: a counter's increase over the time range)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .with_target(target)
        .span(span)
        .height(height)
        .min(0)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .thresholds(thresholds((None, BLUE)))
        .reduce_options(common_builders.ReduceDataOptions().calcs([calc]).values(False))
    )


def state_panel(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    mappings: list[model.ValueMapping],
    *,
    span: int = 12,
    height: int = 8,
) -> statetimeline.Panel:
    """A state timeline for 1/0 series (connected, up), coloured by its value mappings."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .unit("bool_on_off")
        .datasource(DATASOURCE)
        .with_target(target)
        .span(span)
        .height(height)
        .mappings(mappings)
        .thresholds(thresholds((None, RED), (1, GREEN)))
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .fill_opacity(80)
    )


@dataclass(frozen=True)
class Column:
    """One query of a table: its header, PromQL (instant, one row per key), unit and value mappings.

    `hidden` drops the value column: an `*_info` query contributes only its labels.
    """

    title: str
    expr: str
    unit: str = "short"
    mappings: tuple[model.ValueMapping, ...] = ()
    hidden: bool = False


def table_panel(
    title: str,
    description: str,
    columns: Sequence[Column],
    *,
    keep: Sequence[str],
    rename: dict[str, str] | None = None,
    links: dict[str, tuple[str, str]] | None = None,
    span: int = 24,
    height: int = 10,
) -> table.Panel:
    """Several instant queries joined on their common labels into one row per object.

    `keep` lists the label columns to show, in order; `links` maps a column to (title, URL) data links.
    """
    refs = [chr(ord("A") + index) for index in range(len(columns))]
    order = {name: index for index, name in enumerate(keep)}
    renames = dict(rename or {})
    excluded: dict[str, bool] = {"Time": True}
    for ref, column in zip(refs, columns, strict=True):
        value = f"Value #{ref}"
        if column.hidden:
            excluded[value] = True
        else:
            renames[value] = column.title
            order[value] = len(order)
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .unit("short")
        .datasource(DATASOURCE)
        .targets(
            [
                query(column.expr, ref=ref, instant=True, table_format=True)
                for ref, column in zip(refs, columns, strict=True)
            ]
        )
        .span(span)
        .height(height)
        .filterable(True)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": excluded,
                    "indexByName": order,
                    "renameByName": renames,
                    "includeByName": {},
                },
            )
        )
    )
    for column in columns:
        if column.hidden:
            continue
        properties = [model.DynamicConfigValue(id_val="unit", value=column.unit)]
        if column.mappings:
            properties.append(model.DynamicConfigValue(id_val="mappings", value=list(column.mappings)))
            properties.append(
                model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})
            )
        panel = panel.override_by_name(column.title, properties)
    for name, (link_title, url) in (links or {}).items():
        panel = panel.override_by_name(
            name, [model.DynamicConfigValue(id_val="links", value=[{"title": link_title, "url": url}])]
        )
    return panel


def row(title: str) -> dashboard.Row:
    """A section header."""
    return dashboard.Row(title)
