"""The benchmark's results: the flat figures and their details as JSON, one table for the terminal, and
the Markdown page committed as bench/RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.harness import Options


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, how to show it, and the target it is held to (if any)."""

    key: str
    label: str
    unit: str
    target: str = ""
    met: Callable[[float], bool] | None = None


ROWS = (
    Row("scrape_text_median_ms", "scrape /metrics text, median", "ms"),
    Row("scrape_text_p99_ms", "scrape /metrics text, p99", "ms"),
    Row("scrape_gzip_median_ms", "scrape /metrics gzip, median", "ms"),
    Row("scrape_gzip_p99_ms", "scrape /metrics gzip, p99", "ms"),
    Row("floor_text_median_ms", "floor text (same bytes, memory slices), median", "ms"),
    Row("floor_text_p99_ms", "floor text, p99", "ms"),
    Row("floor_gzip_median_ms", "floor gzip (pre-compressed), median", "ms"),
    Row("floor_gzip_p99_ms", "floor gzip, p99", "ms"),
    Row("floor_response_text_median_ms", "same bytes as one web.Response(body=...), text, median", "ms"),
    Row("floor_response_gzip_median_ms", "same bytes as one web.Response(body=...), gzip, median", "ms"),
    Row("baseline_text_median_ms", "baseline text (collector + generate_latest), median", "ms"),
    Row("baseline_text_p99_ms", "baseline text, p99", "ms"),
    Row("baseline_gzip_median_ms", "baseline gzip, median", "ms"),
    Row("baseline_gzip_p99_ms", "baseline gzip, p99", "ms"),
    Row("text_vs_floor", "scrape text / floor text (medians)", "x", "<= 1.5", lambda v: v <= 1.5),
    Row("gzip_vs_floor", "scrape gzip / floor gzip (medians)", "x", "<= 3", lambda v: v <= 3.0),
    Row("baseline_vs_exporter_text", "baseline / exporter, text (medians)", "x", ">= 20", lambda v: v >= 20),
    Row("baseline_vs_exporter_gzip", "baseline / exporter, gzip (medians)", "x"),
    Row("update_apply_p50_ms", "update: chunk read -> store holds it, p50", "ms"),
    Row(
        "update_apply_p99_ms", "update: chunk read -> store holds it, p99", "ms", "<= 5 ms", lambda v: v <= 5
    ),
    Row("update_handler_p99_ms", "update: event handler alone, p99", "ms"),
    Row("update_stamped_p50_ms", "update: simulator's timestamp -> store, p50", "ms"),
    Row("update_stamped_p99_ms", "update: simulator's timestamp -> store, p99", "ms"),
    Row("update_external_p50_ms", "update: change sent -> on /metrics (external), p50", "ms"),
    Row("update_external_p99_ms", "update: change sent -> on /metrics (external), p99", "ms"),
    Row("loop_stall_p99_ms", "event-loop stall while scraping, p99", "ms"),
    Row("loop_stall_max_ms", "event-loop stall while scraping, max", "ms"),
    Row("gc_pause_p99_ms", "garbage collection pause while scraping, p99", "ms"),
    Row("gc_pause_max_ms", "garbage collection pause while scraping, max", "ms"),
    Row("gc_tracked_objects", "objects tracked by the collector after sync", ""),
    Row("cost_cpu_percent_every", "exporter CPU, 200 updates/s drifting every figure, no scrape", "%"),
    Row("cost_cpu_percent_one", "exporter CPU, 200 updates/s changing one figure, no scrape", "%"),
    Row(
        "cost_cpu_percent_every_prometheus",
        "exporter CPU, every figure, Prometheus scraping",
        "%",
        "<= 5 %",
        lambda v: v <= 5,
    ),
    Row(
        "cost_cpu_percent_one_prometheus",
        "exporter CPU, one figure, Prometheus scraping",
        "%",
        "<= 5 %",
        lambda v: v <= 5,
    ),
    Row("prometheus_scrape_duration_max_ms_every", "Prometheus scrape_duration_seconds, max", "ms"),
    Row("cost_cpu_per_update_us_every", "exporter CPU per update, every figure", "us"),
    Row("cost_cpu_per_update_us_one", "exporter CPU per update, one figure", "us"),
    Row("update_floor_us_every", "decode+render floor per update, every figure", "us"),
    Row("update_floor_us_one", "decode+render floor per update, one figure", "us"),
    Row("cost_vs_floor_every", "CPU per update / floor, every figure", "x", "<= 5", lambda v: v <= 5),
    Row("cost_vs_floor_one", "CPU per update / floor, one figure", "x", "<= 5", lambda v: v <= 5),
    Row("relist_wall_s", "re-list (sync_once) wall", "s", "<= 1.5 s", lambda v: v <= 1.5),
    Row("relist_cpu_s", "re-list CPU", "s"),
    Row("relist_fetch_s", "re-list: fetch (HTTP + JSON)", "s"),
    Row("relist_decode_s", "re-list: decode", "s"),
    Row("relist_apply_s", "re-list: render + store", "s"),
    Row("confluent_poll_wall_s", "Confluent poll of one target, wall", "s"),
    Row("confluent_poll_cpu_s", "Confluent poll of one target, CPU", "s"),
    Row("initial_sync_s", "exporter start -> ready", "s", "<= 2.5 s", lambda v: v <= 2.5),
    Row("rss_after_sync_mb", "RSS after sync", "MB", "<= 150 MB", lambda v: v <= 150),
    Row("rss_before_churn_mb", "RSS after the scrape phase", "MB"),
    Row("rss_after_churn_mb", "RSS after the churn", "MB", "<= 160 MB, flat", lambda v: v <= 160),
    Row("rss_after_trim_mb", "RSS after the churn, after gc.collect() + malloc_trim(0)", "MB"),
    Row("churn_updates", "updates applied in the churn", ""),
    Row("churn_rate_per_s", "churn rate achieved", "/s"),
    Row("churn_apply_p99_ms", "update latency during the churn, p99", "ms"),
    Row("upstream_lenses_per_minute", "upstream requests/min, Lenses target", "/min"),
    Row("upstream_confluent_per_minute_per_target", "upstream requests/min per Confluent target", "/min"),
    Row("simulator_generate_s", "simulator: generate the world", "s"),
    Row("simulator_start_s", "simulator: process start -> serving", "s"),
    Row("simulator_list_environments_ms", "simulator: serve the environment list", "ms"),
    Row("simulator_list_agents_ms", "simulator: serve every agent page", "ms"),
    Row("body_text_mb", "exposition size, text", "MB"),
    Row("body_gzip_mb", "exposition size, gzip level 1 (the floor's)", "MB"),
    Row("scrape_gzip_body_mb", "exposition size, the exporter's gzip", "MB"),
    Row("series", "series exposed", ""),
    Row("filtered_series", "series exposed, filtered (production only, detail families denied)", ""),
    Row("filtered_scrape_text_median_ms", "scrape /metrics text, filtered, median", "ms"),
    Row("filtered_rss_after_sync_mb", "RSS after sync, filtered", "MB"),
    Row("filtered_initial_sync_s", "exporter start -> ready, filtered", "s"),
    Row("effective_parallelism", "CPU-bound processes the machine runs at once", "x"),
)

PROMETHEUS_FIGURES = tuple(row.key for row in ROWS if "prometheus" in row.key)
"""Figures of the phase with a real Prometheus, which a machine without the binary cannot report."""
REQUIRED_FIGURES = tuple(row.key for row in ROWS if row.key not in PROMETHEUS_FIGURES)
"""Every other figure a run reports (each a positive number)."""

DEFINITIONS = """\
- **scrape**: wall time of one `GET /metrics` by the one client (aiohttp, keep-alive, body read whole,
  not decompressed), from sending the request to the body's last byte. Exporter, floor and baseline take
  turns, round-robin with a rotating order, text and gzip, the same number of samples each, while the
  simulator sends environment updates over the live stream. p99 is nearest-rank (of 20 samples: the max).
- **floor**: a trivial aiohttp handler in its own process streaming the exporter's own body from memory
  in 1 MiB memoryview slices with a Content-Length (nothing copied before the socket); the gzip floor
  serves it compressed once beforehand (level 1, as the exporter compresses). The same bytes answered as
  one `web.Response(body=...)` are shown too: on Python 3.11 asyncio joins and buffers such a body
  before the socket takes it, and that costs several times the floor.
- **baseline**: the same families built by a prometheus_client custom collector from the decoded state at
  scrape time, `generate_latest` (and gzip) run with `asyncio.to_thread`, in its own process, following
  the same live stream.
- **update, chunk read -> store**: in the exporter's process, from the stream parser receiving the chunk
  that holds an `environment_updated` event to its handler's return (the store holds the new series; the
  next scrape serves them). Measured over the scrape phase. **handler alone**: the handler's own time.
  **simulator's timestamp -> store**: the event's `status.agent.updated_at`, written by the simulator when
  it generated the change (truncated to the millisecond, so up to 1 ms too high), to that same moment; it
  includes the simulator's send, the socket and any wait for the exporter's event loop.
- **update, external**: the harness changes one environment's `num_issues` through the simulator's admin
  endpoint, then scrapes until the value shows; from sending the change to the start of the first scrape
  that shows it (resolution: one scrape).
- **event-loop stall**: how late a 5 ms sleep in the exporter wakes up; a scrape or a re-list holding the
  loop delays every event behind it by that much.
- **cost**: the exporter's process CPU time (from /proc) over a fixed window while the simulator sends
  environment updates at the scrape phase's rate, divided by the window (percent of one core) and by the
  updates applied (CPU per update). Two kinds of update: the simulator's drift (every figure of an
  environment moves) and one figure each (its issue count by one). First with no scrape at all, then with
  Debian's Prometheus scraping the exporter at a fixed interval with its defaults (gzip); its own
  `scrape_duration_seconds` is reported. The harness's own latency and event-loop probes inside the
  exporter's process are off for these windows (only updates are counted). **floor**: the same events,
  captured from the simulator's stream, decoded with `json.loads` and rendered by a minimal formatter
  (`bench/update_floor.py`) in the harness's process, the best of three passes; CPU per update / floor says
  how far the exporter is above the least work an update needs.
- **re-list**: the Lenses sync's `sync_once()` called in the exporter's process with updates paused: wall
  time and `time.process_time()`; fetch = HTTP and JSON parsing, decode = objects to models, apply =
  render and store. The exporter's memory of which items it has seen unchanged is cleared first, so every
  item is decoded (a real HQ's listings may differ in every item's timestamps). **Confluent poll**:
  `ConfluentSync.poll(target)` likewise, every page of one target.
- **garbage collection**: every pause of Python's collector in the exporter (`gc.callbacks`) over the scrape
  phase; a full (generation 2) collection walks every tracked object and holds the event loop meanwhile.
- **RSS**: resident set size of the exporter's process from /proc, after the first sync of every target,
  after the scrape phase, and after the churn (sampled every tenth of it: see the JSON); at the very end,
  again after `gc.collect()` and glibc's `malloc_trim(0)`: the difference is memory the allocator keeps
  from earlier peaks (large scrape bodies), not memory the objects hold.
- **effective parallelism**: a busy loop alone, then two at once; 2 * alone / together. Every process of
  the run (simulator, exporter, baseline, floor, client) shares these cores.
- **upstream requests/min**: the requests of one sync cycle, counted by the exporter's own
  `lenses_hq_exporter_upstream_requests_total` across the timed re-lists and polls (per re-list; per
  Confluent target), times the cycles per minute at the default poll intervals (Lenses 30 s, Confluent
  60 s). The notes give what the counters showed from ready to the end of the run, the timed re-lists and
  polls taken out. The live stream is one long-lived request, opened again only after a failure.
"""


def machine() -> dict[str, Any]:
    """What the run ran on."""
    model = ""
    memory = 0
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
        with open("/proc/meminfo") as meminfo:
            memory = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal"))) * 1024
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def revision() -> str:
    """The commit measured, with `+changes` when the working tree differs from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "exporter"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes in exporter/" if dirty else "")


def assemble(
    options: Options, figures: dict[str, float], details: dict[str, Any], started: datetime.datetime
) -> dict[str, Any]:
    """The JSON document: what was run, on what, the flat figures, and the details behind them."""
    return {
        "meta": {
            "command": options.command,
            "date": started.isoformat(timespec="seconds"),
            "duration_seconds": round((datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1),
            "revision": revision(),
            "machine": machine(),
            "environments": options.environments,
            "agents": options.agents,
            "scrapes": options.scrapes,
            "updates": options.updates,
            "update_rate": options.update_rate,
            "churn_rate": options.churn_rate,
            "probes": options.probes,
            "relists": options.relists,
            "cost_window": options.cost_window,
            "prometheus_interval": options.prometheus_interval,
            "quick": options.quick,
        },
        "figures": {row.key: figures[row.key] for row in ROWS if row.key in figures},
        "targets": {
            row.key: {"target": row.target, "met": row.met(figures[row.key])}
            for row in ROWS
            if row.met is not None and row.key in figures
        },
        "details": details,
    }


def _value(value: float, unit: str) -> str:
    if unit in ("", "/min") and float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def _notes(key: str, details: dict[str, Any]) -> str:
    churn = details.get("churn", {})
    upstream = details.get("upstream", {})
    scrape = details.get("scrape_phase", {})
    if key == "rss_after_churn_mb" and churn:
        return (
            f"{churn['growth_mb']:+.1f} MB over the churn, {churn['growth_second_half_mb']:+.1f} MB over its "
            "second half"
        )
    if key == "churn_rate_per_s" and churn:
        cpu = churn["cpu_percent"]
        return (
            f"asked {churn['requested_rate']:.0f}/s; CPU % of a core: exporter {cpu.get('exporter', 0):.0f}, "
            f"simulator {cpu.get('simulator', 0):.0f}, harness {cpu.get('harness', 0):.0f}"
        )
    if key == "update_apply_p99_ms" and scrape:
        return f"{scrape['update_rate_achieved']:.0f} updates/s applied while scraping"
    if key == "upstream_lenses_per_minute" and upstream:
        return (
            f"{upstream['lenses_requests_per_cycle']:.0f} listing every "
            f"{upstream['poll_interval_seconds']['lenses']:.0f} s, "
            f"{upstream['stream_connections']:.0f} stream connection(s) in the run; observed "
            f"{upstream['lenses_observed_per_minute']:.2f}/min over {upstream['window_minutes']:.1f} min"
        )
    if key == "upstream_confluent_per_minute_per_target" and upstream:
        return (
            f"{upstream['confluent_requests_per_cycle_per_target']:.0f} pages every "
            f"{upstream['poll_interval_seconds']['confluent']:.0f} s; observed "
            f"{upstream['confluent_observed_per_minute_per_target']:.2f}/min over "
            f"{upstream['window_minutes']:.1f} min"
        )
    if key == "update_external_p99_ms" and "external_check" in details:
        needed = details["external_check"]["scrapes_needed"]
        return f"first scrape showed it in {sum(1 for n in needed if n == 1)} of {len(needed)} probes"
    if key == "gc_pause_max_ms" and scrape:
        full = details["update_latency_while_scraping"]["gc_full_pauses"]
        if not full["count"]:
            return "no full (generation 2) collection"
        return (
            f"{full['count']:.0f} full (generation 2) collections in {scrape['seconds']:.0f} s, "
            f"p50 {full['p50_ms']:.0f} ms, longest {full['max_ms']:.0f} ms"
        )
    if key == "loop_stall_max_ms" and "update_latency_while_scraping" in details:
        worst = details["update_latency_while_scraping"].get("worst_stalls", [])
        return "longest: " + ", ".join(f"{stall['ms']:.0f} ms" for stall in worst[:5]) if worst else ""
    if key == "series" and "baseline_body" in details:
        return f"baseline body {details['baseline_body']['text_bytes'] / 2**20:.1f} MB text"
    if key == "filtered_series" and "filtered" in details:
        return f"{details['filtered']['text_bytes'] / 2**20:.1f} MB text; beside `series exposed`"
    return ""


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target and whether it is met, notes) for every figure present."""
    figures, targets, details = results["figures"], results["targets"], results["details"]
    lines = []
    for row in ROWS:
        if row.key not in figures:
            continue
        value = _value(figures[row.key], row.unit) + (f" {row.unit}" if row.unit else "")
        target = ""
        if row.key in targets:
            target = f"{row.target} ({'met' if targets[row.key]['met'] else 'MISSED'})"
        lines.append((row.label, value, target, _notes(row.key, details)))
    return lines


def _heading(results: dict[str, Any]) -> str:
    meta = results["meta"]
    details = results["details"]
    body = details.get("body", {})
    return (
        f"{meta['environments']:,} environments, {meta['agents']:,} agents, "
        f"{results['figures'].get('series', 0):,.0f} series, "
        f"{body.get('text_bytes', 0) / 2**20:.1f} MB text / {body.get('gzip_bytes', 0) / 2**20:.1f} MB gzip; "
        f"{meta['scrapes']} scrapes each at {meta['update_rate']:.0f} updates/s"
    )


def table(results: dict[str, Any]) -> str:
    """The table for the terminal."""
    lines = rows(results)
    widths = [max(len(line[column]) for line in lines) for column in range(3)]
    out = [_heading(results), ""]
    for label, value, target, notes in lines:
        out.append(f"{label:<{widths[0]}}  {value:>{widths[1]}}  {target:<{widths[2]}}  {notes}".rstrip())
    out += _profile_text(results, markdown=False)
    return "\n".join(out)


def _profile_text(results: dict[str, Any], markdown: bool) -> list[str]:
    profiles = results["details"].get("profiles")
    if not profiles:
        return []
    out = [
        "",
        "## Profiles (py-spy, exporter process)" if markdown else "Profiles (py-spy, exporter process)",
    ]
    if "error" in profiles:
        return [*out, profiles["error"]]
    for phase, profile in profiles.items():
        out += [
            "",
            f"### {phase} ({profile['samples']} samples)"
            if markdown
            else f"{phase} ({profile['samples']} samples)",
        ]
        for kind in ("self", "inclusive"):
            out.append(f"{'' if not markdown else '- '}hottest by {kind} time:")
            for frame, share in profile[kind][:12]:
                out.append(f"  - {share:5.1f}%  {frame}" if markdown else f"  {share:5.1f}%  {frame}")
    return out


def markdown(results: dict[str, Any]) -> str:
    """bench/RESULTS.md: the table, the command, the machine and the date, and what each figure means."""
    meta = results["meta"]
    machine_info = meta["machine"]
    lines = [
        "# Fleet-scale benchmark",
        "",
        f"Measured {meta['date']} on revision {meta['revision']} in {meta['duration_seconds']:.0f} s:",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"Machine: {machine_info['cpu']}, {machine_info['cores']} cores, {machine_info['memory_gib']} GiB, "
        f"{machine_info['platform']}, Python {machine_info['python']}.",
        "",
        _heading(results) + ".",
        "",
        "| Figure | Value | Target | Notes |",
        "| --- | ---: | --- | --- |",
    ]
    for label, value, target, notes in rows(results):
        lines.append(f"| {label} | {value} | {target} | {notes} |")
    lines += ["", "## What is measured", "", DEFINITIONS]
    lines += _profile_text(results, markdown=True)
    return "\n".join(lines).rstrip() + "\n"
