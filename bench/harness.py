"""`make bench`: the exporter at fleet scale, in one run.

Five processes: the simulator (E environments, A agents, every metrics block filled), the exporter under
test (synced to it, instrumented), the baseline (the same families built by a prometheus_client collector at
scrape time), the floor (the exporter's own bytes served from memory), and this harness, the one client
that takes every measurement. The phases, in order:

1. simulator: generate, then time serving the full environment list and every agent page;
2. exporter: start → ready (first listing of every target), RSS;
3. scrapes, while the simulator sends `--update-rate` environment updates per second over the live stream:
   `--scrapes` rounds, each round one GET of the exporter, the floor and the baseline, text and gzip, the
   order rotating between rounds; the exporter's update latency and event-loop stalls over the same window;
4. external update check: change one environment's figure in the simulator, scrape until it shows;
5. cost: the exporter's CPU over `--cost-window` seconds at `--update-rate`, for updates that drift every
   figure and for updates that change one, first with no scrape at all, then with a real Prometheus
   scraping it every `--prometheus-interval` (gzip, as Prometheus asks), with the harness's probes in the
   exporter's process off; the decode+render floor of the same events (`bench/update_floor.py`) and the
   exporter's CPU per update as a multiple of it;
6. re-list: `sync_once()` in-process, updates paused; one Confluent poll per target likewise;
7. churn: `--updates` updates at `--churn-rate` per second, RSS sampled as they are applied;
8. with `--profile`: py-spy recordings of the exporter while scraping, applying updates and re-listing.

Upstream cost is read from the exporter's own `lenses_hq_exporter_upstream_requests_total` at default poll
settings. Results: one table on stdout, `bench/results/latest.json`, and `bench/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import re
import shlex
import shutil
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import report, update_floor
from bench.common import CONFLUENT_API_KEY, CONFLUENT_API_SECRET, LENSES_TOKEN, summary_ms
from bench.processes import ROOT, Child
from bench.profiling import Recording, py_spy
from exporter.config import Settings, load_settings

RESULTS = ROOT / "bench" / "results"
SERVERS = ("exporter", "floor", "floor_response", "baseline")
PATHS = {"floor_response": ("floor", "/whole")}
ENCODINGS = ("text", "gzip")
ISSUES_BASE = 900_000
PROBE_ATTEMPTS = 50
READY_TIMEOUT = 600.0
STALL_TIMEOUT = 60.0
CHUNK = 1 << 20


@dataclass
class Options:
    """What to run: sizes, sample counts, rates, and where results go."""

    environments: int = 10_000
    agents: int = 10_000
    scrapes: int = 20
    updates: int = 100_000
    update_rate: float = 200.0
    churn_rate: float = 2_000.0
    probes: int = 20
    relists: int = 3
    cost_window: float = 60.0
    prometheus_interval: float = 15.0
    quick: bool = False
    profile: bool = False
    json_path: Path = RESULTS / "latest.json"
    markdown_path: Path | None = ROOT / "bench" / "RESULTS.md"
    work_dir: Path = RESULTS / "run"
    command: str = ""
    given: set[str] = field(default_factory=set)


QUICK = {
    "environments": 1_000,
    "agents": 1_000,
    "scrapes": 5,
    "updates": 5_000,
    "probes": 5,
    "relists": 2,
    "cost_window": 20.0,
    "prometheus_interval": 5.0,
}
UPDATE_KINDS = ("every", "one")
"""Generated updates that drift every figure of an environment, and updates that change one figure each."""
FLOOR_EVENTS = 2_000
"""Stream events the decode+render floor is measured on (per kind of update)."""


def parse_arguments(argv: list[str]) -> Options:
    """The command line; `--quick` lowers every size and count that is not given explicitly."""
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=int, default=defaults.environments, help="Lenses environments")
    parser.add_argument("--agents", type=int, default=defaults.agents, help="Confluent Flink agents")
    parser.add_argument("--scrapes", type=int, default=defaults.scrapes, help="scrapes of each server")
    parser.add_argument("--updates", type=int, default=defaults.updates, help="updates in the churn phase")
    parser.add_argument(
        "--update-rate", type=float, default=defaults.update_rate, help="updates/s while scraping"
    )
    parser.add_argument(
        "--churn-rate", type=float, default=defaults.churn_rate, help="updates/s while churning"
    )
    parser.add_argument("--probes", type=int, default=defaults.probes, help="external update checks")
    parser.add_argument("--relists", type=int, default=defaults.relists, help="timed re-lists")
    parser.add_argument(
        "--cost-window", type=float, default=defaults.cost_window, help="seconds of each CPU-cost window"
    )
    parser.add_argument(
        "--prometheus-interval",
        type=float,
        default=defaults.prometheus_interval,
        help="scrape interval of the real Prometheus in the cost phase, seconds",
    )
    parser.add_argument("--quick", action="store_true", help=f"smaller defaults: {QUICK}")
    parser.add_argument("--profile", action="store_true", help="also record py-spy profiles of the exporter")
    parser.add_argument("--json", type=Path, default=defaults.json_path, help="where to write the JSON")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=defaults.markdown_path,
        help="where to write the Markdown table ('' for nowhere)",
    )
    parser.add_argument("--work-dir", type=Path, default=defaults.work_dir, help="logs, config, profiles")
    arguments = parser.parse_args(argv)
    given = {
        name
        for name in QUICK
        if any(
            arg == f"--{name.replace('_', '-')}" or arg.startswith(f"--{name.replace('_', '-')}=")
            for arg in argv
        )
    }
    options = Options(
        environments=arguments.environments,
        agents=arguments.agents,
        scrapes=max(1, arguments.scrapes),
        updates=max(1, arguments.updates),
        update_rate=arguments.update_rate,
        churn_rate=arguments.churn_rate,
        probes=max(1, arguments.probes),
        relists=max(1, arguments.relists),
        cost_window=max(1.0, arguments.cost_window),
        prometheus_interval=max(1.0, arguments.prometheus_interval),
        quick=arguments.quick,
        profile=arguments.profile,
        json_path=arguments.json,
        markdown_path=arguments.markdown if str(arguments.markdown) not in ("", ".") else None,
        work_dir=arguments.work_dir.resolve(),
        command=" ".join(["python -m bench", *map(shlex.quote, argv)]),
        given=given,
    )
    if options.quick:
        for name, value in QUICK.items():
            if name not in given:
                setattr(options, name, value)
    return options


class Bench:
    """One benchmark run: the children, the one client, and what was measured."""

    def __init__(self, options: Options, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.session = session
        self.children: dict[str, Child] = {}
        self.details: dict[str, Any] = {}
        self.figures: dict[str, float] = {}
        self.sim: dict[str, Any] = {}
        self.manual_requests: dict[str, float] = {}
        self.counters_at_ready: dict[str, float] = {}
        self.ready_at = 0.0
        self.settings: Settings | None = None

    # ----- helpers ------------------------------------------------------------------------------

    def url(self, server: str) -> str:
        """The /metrics URL of a server (the floor's whole-body variant is another path of the floor)."""
        child, path = PATHS.get(server, (server, "/metrics"))
        return f"http://127.0.0.1:{self.children[child].ready['port']}{path}"

    def control(self, path: str) -> str:
        """A URL of the exporter's control port."""
        return f"http://127.0.0.1:{self.children['exporter'].ready['control_port']}{path}"

    async def get_json(self, url: str, method: str = "GET", body: Any = None) -> Any:
        """A JSON request to a control or admin endpoint."""
        async with self.session.request(method, url, json=body) as response:
            response.raise_for_status()
            return json.loads(await response.read())

    async def set_rate(self, rate: float) -> None:
        """How many environment updates per second the simulator generates."""
        await self.get_json(f"{self.sim['url']}/_admin/faults", "POST", {"updates_per_second": rate})

    async def scrape(self, server: str, encoding: str, keep: bool = False) -> tuple[float, int, bytes]:
        """One timed GET of /metrics: from sending the request to the body's last byte. Chunks are counted
        as they arrive (and joined afterwards, untimed, when `keep`), so the client's own cost stays small."""
        headers = {"Accept-Encoding": "gzip" if encoding == "gzip" else "identity"}
        chunks: list[bytes] = []
        size = 0
        started = time.perf_counter()
        async with self.session.get(self.url(server), headers=headers) as response:
            async for chunk in response.content.iter_chunked(CHUNK):
                size += len(chunk)
                if keep:
                    chunks.append(chunk)
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{server} /metrics answered {response.status}")
        if (response.headers.get("Content-Encoding") == "gzip") != (encoding == "gzip"):
            raise RuntimeError(f"{server} /metrics ignored Accept-Encoding for {encoding}")
        return elapsed, size, b"".join(chunks)

    def cpu(self) -> dict[str, float]:
        """CPU seconds of every child so far, and of this process."""
        used = {name: child.cpu_seconds() for name, child in self.children.items()}
        used["harness"] = time.process_time()
        return used

    @staticmethod
    def cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Percent of one core each process used between two readings."""
        return {
            name: round(100.0 * (after[name] - before[name]) / seconds, 1)
            for name in after
            if name in before and seconds > 0
        }

    async def exporter_events(self) -> int:
        """Environment updates the exporter has applied so far."""
        events: int = (await self.get_json(self.control("/events")))["events"]
        return events

    async def drain(self) -> None:
        """Wait until the exporter stops receiving updates (after the rate went to 0)."""
        last = -1
        while True:
            now = await self.exporter_events()
            if now == last:
                return
            last = now
            await asyncio.sleep(0.3)

    async def own_metrics(self) -> dict[str, float]:
        """The exporter's self-metrics, keyed `name{label="value",...}` with the labels sorted."""
        async with self.session.get(
            self.url("exporter"), headers={"Accept-Encoding": "identity"}
        ) as response:
            body = await response.read()
        start = body.find(b"# HELP lenses_hq_exporter_")
        values: dict[str, float] = {}
        for match in re.finditer(rb"^(lenses_hq_exporter_\w+)\{([^}]*)\} (\S+)$", body[start:], re.M):
            labels = ",".join(sorted(match.group(2).decode().split(",")))
            values[f"{match.group(1).decode()}{{{labels}}}"] = float(match.group(3))
        return values

    # ----- phases -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Every phase, in order; children are stopped whatever happens."""
        try:
            await self.calibrate()
            await self.start_simulator()
            await self.start_exporter()
            await self.start_references()
            await self.scrapes()
            await self.external_check()
            for name in ("baseline", "floor"):
                await self.children.pop(name).stop()
            await self.cost()
            await self.relist()
            await self.churn()
            await self.upstream_cost()
            await self.trim()
            if self.options.profile:
                await self.profiles()
            await self.filtered()
        finally:
            for child in list(self.children.values()):
                with contextlib.suppress(Exception):
                    await child.stop()

    async def calibrate(self) -> None:
        """How many CPU-bound processes this machine runs in parallel: one busy loop alone, then two at
        once (a machine whose cores are busy siblings shows about 1 rather than 2)."""
        loop = "import time; n = time.perf_counter(); sum(range(20_000_000)); print(time.perf_counter() - n)"

        async def busy(count: int) -> float:
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable, "-c", loop, stdout=asyncio.subprocess.PIPE
                )
                for _ in range(count)
            ]
            outputs = [await process.communicate() for process in processes]
            return statistics.mean(float(output.decode()) for output, _ in outputs)

        alone = await busy(1)
        together = await busy(2)
        self.details["machine"] = {"busy_loop_alone_s": alone, "busy_loop_two_at_once_s": together}
        self.figures["effective_parallelism"] = 2 * alone / together

    async def start_simulator(self) -> None:
        """Generate the world in its own process; time serving the listing and every agent page."""
        options = self.options
        started = time.perf_counter()
        simulator = await Child.start(
            "simulator",
            "bench.simulator_host",
            ["--environments", str(options.environments), "--agents", str(options.agents)],
            options.work_dir / "logs",
            READY_TIMEOUT,
        )
        self.children["simulator"] = simulator
        self.sim = simulator.ready
        self.figures["simulator_start_s"] = time.perf_counter() - started
        self.figures["simulator_generate_s"] = self.sim["generate_seconds"]
        listings = []
        for _ in range(3):
            began = time.perf_counter()
            async with self.session.get(
                f"{self.sim['lenses_url']}/v1/environments",
                headers={"Authorization": f"Bearer {LENSES_TOKEN}", "Accept-Encoding": "identity"},
            ) as response:
                body = await response.read()
            listings.append(time.perf_counter() - began)
        self.figures["simulator_list_environments_ms"] = 1000 * statistics.median(listings)
        self.details["simulator"] = {**self.sim, "names": len(self.sim["names"]), "list_bytes": len(body)}
        began = time.perf_counter()
        pages = agents = 0
        auth = aiohttp.BasicAuth(CONFLUENT_API_KEY, CONFLUENT_API_SECRET)
        for environment_id in self.sim["confluent_environment_ids"]:
            url: str | None = (
                f"{self.sim['url']}/sql/v1/organizations/{self.sim['organization_id']}"
                f"/environments/{environment_id}/agents?page_size=100"
            )
            while url:
                async with self.session.get(
                    url, auth=auth, headers={"Accept-Encoding": "identity"}
                ) as response:
                    page = json.loads(await response.read())
                pages += 1
                agents += len(page["data"])
                url = page["metadata"].get("next") or None
        self.figures["simulator_list_agents_ms"] = 1000 * (time.perf_counter() - began)
        self.details["simulator"].update(agent_pages=pages, agents_listed=agents)

    def write_config(self, filtered: bool = False) -> Path:
        """The exporter's configuration: the simulator as upstream, every other setting at its default;
        `filtered`: only the production tier, and the capability, metadata and tool families denied."""
        work = self.options.work_dir
        work.mkdir(parents=True, exist_ok=True)
        secrets = {"hq-token": LENSES_TOKEN, "api-key": CONFLUENT_API_KEY, "api-secret": CONFLUENT_API_SECRET}
        for name, value in secrets.items():
            path = work / name
            path.write_text(value)
            path.chmod(0o600)
        targets = "".join(
            f"""
    - name: flink-{index}
      url: {self.sim["url"]}
      organization_id: {self.sim["organization_id"]}
      environment_id: {environment_id}
      api_key_file: {work / "api-key"}
      api_secret_file: {work / "api-secret"}"""
            for index, environment_id in enumerate(self.sim["confluent_environment_ids"], start=1)
        )
        config = work / ("exporter-filtered.yml" if filtered else "exporter.yml")
        filters = FILTERS if filtered else ""
        config.write_text(
            f"""web:
  listen_address: 127.0.0.1:0
lenses:
  name: hq
  url: {self.sim["lenses_url"]}
  token_file: {work / "hq-token"}{filters}
confluent:
  targets:{targets}
log:
  level: warning
"""
        )
        return config

    async def start_ready(self, name: str, config: Path) -> Child:
        """An exporter child named `name` built from `config`, once its /readyz answers 200."""
        child = await Child.start(
            name, "bench.exporter_host", [str(config)], self.options.work_dir / "logs", READY_TIMEOUT
        )
        self.children[name] = child
        readyz = f"http://127.0.0.1:{child.ready['port']}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            async with self.session.get(readyz) as response:
                if response.status == 200:
                    return child
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} exporter did not become ready")
            await asyncio.sleep(0.05)

    async def start_exporter(self) -> None:
        """Start the exporter and wait until every target has synced once."""
        config = self.write_config()
        self.settings = load_settings(config)
        started = time.perf_counter()
        exporter = await self.start_ready("exporter", config)
        self.figures["initial_sync_s"] = time.perf_counter() - started
        self.ready_at = time.monotonic()
        self.figures["rss_after_sync_mb"] = exporter.rss_bytes() / 2**20
        garbage = await self.get_json(self.control("/gc"))
        self.details["gc_after_sync"] = garbage
        self.figures["gc_tracked_objects"] = float(garbage["tracked_objects"])
        own = await self.own_metrics()
        self.counters_at_ready = own
        for name, value in own.items():
            if name.startswith("lenses_hq_exporter_sync_duration_seconds{") and 'source="lenses"' in name:
                self.figures["initial_listing_lenses_s"] = value
        durations = [
            value
            for name, value in own.items()
            if name.startswith("lenses_hq_exporter_sync_duration_seconds{") and 'source="confluent"' in name
        ]
        if durations:
            self.figures["initial_poll_confluent_s"] = max(durations)

    async def start_references(self) -> None:
        """The baseline (its own listing and stream) and the floor (the exporter's bytes, from memory)."""
        work = self.options.work_dir
        config = work / "exporter.yml"
        self.children["baseline"] = await Child.start(
            "baseline", "bench.baseline", [str(config)], work / "logs", READY_TIMEOUT
        )
        _, _, body = await self.scrape("exporter", "text", keep=True)
        body_file = work / "metrics.txt"
        body_file.write_bytes(body)
        self.children["floor"] = await Child.start("floor", "bench.floor", [str(body_file)], work / "logs")
        self.details["body"] = {
            "text_bytes": len(body),
            "gzip_bytes": self.children["floor"].ready["gzip_bytes"],
            "series": body.count(b"\n") - body.count(b"\n#"),
        }
        self.figures["body_text_mb"] = len(body) / 2**20
        self.figures["body_gzip_mb"] = self.children["floor"].ready["gzip_bytes"] / 2**20
        self.figures["series"] = float(self.details["body"]["series"])

    async def scrapes(self) -> None:
        """Every server and encoding, the same number of times, round-robin, while updates stream in."""
        options = self.options
        await self.set_rate(options.update_rate)
        pairs = [(server, encoding) for server in SERVERS for encoding in ENCODINGS]
        sizes: dict[str, int] = {}
        for server, encoding in pairs:  # warm-up: connections open, caches filled
            _, sizes[f"{server}_{encoding}"], _ = await self.scrape(server, encoding)
        self.details["baseline_body"] = {
            "text_bytes": sizes["baseline_text"],
            "gzip_bytes": sizes["baseline_gzip"],
        }
        self.figures["scrape_gzip_body_mb"] = sizes["exporter_gzip"] / 2**20
        await self.get_json(self.control("/reset"), "POST")
        events_before = await self.exporter_events()
        timings: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
        cpu_before, started = self.cpu(), time.perf_counter()
        log: list[tuple[float, str, float]] = []
        for round_ in range(options.scrapes):
            shift = round_ % len(pairs)
            for server, encoding in pairs[shift:] + pairs[:shift]:
                at = time.time()
                elapsed, _, _ = await self.scrape(server, encoding)
                timings[(server, encoding)].append(elapsed)
                log.append((at, f"{server} {encoding}", elapsed))
        seconds = time.perf_counter() - started
        stats = await self.get_json(self.control("/stats"))
        events = stats["events"] - events_before
        self.details["scrape_phase"] = {
            "seconds": seconds,
            "updates_applied": events,
            "update_rate_achieved": events / seconds,
            "cpu_percent": self.cpu_share(cpu_before, self.cpu(), seconds),
            "bodies": sizes,
            "log": [[round(at, 3), what, round(elapsed, 4)] for at, what, elapsed in log],
        }
        for (server, encoding), values in timings.items():
            summary = summary_ms(values)
            self.details.setdefault("scrape", {}).setdefault(server, {})[encoding] = {
                **summary,
                "samples_ms": [round(value * 1000, 2) for value in values],
            }
            prefix = "scrape" if server == "exporter" else server
            self.figures[f"{prefix}_{encoding}_median_ms"] = statistics.median(values) * 1000
            self.figures[f"{prefix}_{encoding}_p99_ms"] = summary["p99_ms"]
        figures = self.figures
        figures["text_vs_floor"] = figures["scrape_text_median_ms"] / figures["floor_text_median_ms"]
        figures["gzip_vs_floor"] = figures["scrape_gzip_median_ms"] / figures["floor_gzip_median_ms"]
        figures["baseline_vs_exporter_text"] = (
            figures["baseline_text_median_ms"] / figures["scrape_text_median_ms"]
        )
        figures["baseline_vs_exporter_gzip"] = (
            figures["baseline_gzip_median_ms"] / figures["scrape_gzip_median_ms"]
        )
        self.details["update_latency_while_scraping"] = stats
        for name in ("apply", "stamped", "handler"):
            figures[f"update_{name}_p50_ms"] = stats[name]["p50_ms"]
            figures[f"update_{name}_p99_ms"] = stats[name]["p99_ms"]
        figures["loop_stall_p99_ms"] = stats["loop_lag"]["p99_ms"]
        figures["loop_stall_max_ms"] = stats["loop_lag"]["max_ms"]
        # No collection at all while scraping is a real outcome (the long-lived state is frozen): 0 ms.
        paused = stats["gc_pauses"]["count"] > 0
        figures["gc_pause_p99_ms"] = stats["gc_pauses"]["p99_ms"] if paused else 0.0
        figures["gc_pause_max_ms"] = stats["gc_pauses"]["max_ms"] if paused else 0.0

    async def external_check(self) -> None:
        """Change a figure in the simulator, then scrape the exporter until the new value shows.

        The latency is from sending the change to the start of the first scrape that shows it: an upper
        bound whose resolution is one scrape (the scrape before it did not show it yet)."""
        names: list[str] = self.sim["names"]
        latencies, scrapes_needed = [], []
        for index in range(self.options.probes):
            name = names[index % len(names)]
            value = ISSUES_BASE + index
            prefix = f'lenses_environment_issues{{environment="{name}",'.encode()
            expected = f"}} {value}\n".encode()
            requested = time.perf_counter()
            await self.get_json(
                f"{self.sim['url']}/_admin/world",
                "POST",
                {"action": "set_metrics", "args": {"name": name, "section": "other", "num_issues": value}},
            )
            for attempt in range(1, PROBE_ATTEMPTS + 1):
                began = time.perf_counter()
                _, _, body = await self.scrape("exporter", "text", keep=True)
                at = body.find(prefix)
                line = body[at : body.find(b"\n", at) + 1] if at >= 0 else b""
                if line.endswith(expected):
                    latencies.append(began - requested)
                    scrapes_needed.append(attempt)
                    break
            else:
                raise RuntimeError(f"{name}: the change never showed on /metrics")
        summary = summary_ms(latencies)
        self.details["external_check"] = {**summary, "scrapes_needed": scrapes_needed}
        self.figures["update_external_p50_ms"] = summary["p50_ms"]
        self.figures["update_external_p99_ms"] = summary["p99_ms"]

    async def exporter_cost(self, seconds: float) -> dict[str, float]:
        """The exporter's CPU and the updates it applied over the next `seconds`."""
        exporter = self.children["exporter"]
        cpu_before, events_before, started = (
            exporter.cpu_seconds(),
            await self.exporter_events(),
            time.perf_counter(),
        )
        await asyncio.sleep(seconds)
        cpu, events = exporter.cpu_seconds() - cpu_before, await self.exporter_events() - events_before
        elapsed = time.perf_counter() - started
        return {
            "seconds": elapsed,
            "cpu_seconds": cpu,
            "updates": float(events),
            "cpu_percent": 100.0 * cpu / elapsed,
            "cpu_per_update_us": 1e6 * cpu / max(1, events),
        }

    async def set_updates(self, kind: str, rate: float) -> None:
        """Which kind of update the simulator generates, and how many per second; then a short settling."""
        await self.get_json(
            f"{self.sim['url']}/_admin/faults", "POST", {"updates_per_second": rate, "update_kind": kind}
        )
        await asyncio.sleep(2.0)

    async def cost(self) -> None:
        """What following the fleet costs: the exporter's CPU with no scrape and with a real Prometheus
        scraping it, for both kinds of update, and per update as a multiple of the decode+render floor."""
        options = self.options
        stream = f"{self.sim['lenses_url']}/v1/environments/live/sse"
        details: dict[str, Any] = {"window_seconds": options.cost_window, "update_rate": options.update_rate}
        # The exporter's own CPU: the harness's latency and loop probes inside its process are off meanwhile.
        await self.get_json(self.control("/probes?on=0"), "POST")
        for kind in UPDATE_KINDS:
            await self.set_updates(kind, options.update_rate)
            capture = asyncio.create_task(
                update_floor.capture_updates(
                    self.session, stream, LENSES_TOKEN, FLOOR_EVENTS, options.cost_window
                )
            )
            window = await self.exporter_cost(options.cost_window)
            floor = update_floor.floor_seconds(await capture)
            details[f"{kind}_no_scrape"] = window
            details[f"{kind}_floor"] = floor
            self.figures[f"cost_cpu_percent_{kind}"] = window["cpu_percent"]
            self.figures[f"cost_cpu_per_update_us_{kind}"] = window["cpu_per_update_us"]
            self.figures[f"update_floor_us_{kind}"] = 1e6 * floor["per_event_seconds"]
            self.figures[f"cost_vs_floor_{kind}"] = window["cpu_per_update_us"] / (
                1e6 * floor["per_event_seconds"]
            )
        binary = shutil.which("prometheus")
        if binary is None:
            details["prometheus"] = "not run: no prometheus binary (apt-get install prometheus)"
        else:
            async with RealPrometheus(
                binary,
                self.options.work_dir / "prometheus",
                self.children["exporter"].ready["port"],
                options.prometheus_interval,
                self.session,
            ) as prometheus:
                for kind in UPDATE_KINDS:
                    await self.set_updates(kind, options.update_rate)
                    await prometheus.scraped()
                    window = await self.exporter_cost(options.cost_window)
                    durations = await prometheus.scrape_durations(window["seconds"])
                    details[f"{kind}_prometheus"] = {**window, "scrape_duration": durations}
                    self.figures[f"cost_cpu_percent_{kind}_prometheus"] = window["cpu_percent"]
                    self.figures[f"prometheus_scrape_duration_max_ms_{kind}"] = 1000 * durations["max"]
        await self.get_json(self.control("/probes?on=1"), "POST")
        await self.set_updates("every", 0)
        await self.drain()
        self.details["cost"] = details

    async def relist(self) -> None:
        """Timed in-process re-lists and Confluent polls, with the update stream paused."""
        await self.set_rate(0)
        await self.drain()
        before = await self.own_metrics()
        relists = await self.get_json(self.control(f"/relist?count={self.options.relists}"), "POST")
        polls = await self.get_json(self.control("/poll"), "POST")
        after = await self.own_metrics()
        self.manual_requests = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
        runs = relists["runs"]
        if not all(run["succeeded"] for run in runs + polls["runs"]):
            raise RuntimeError(f"a timed re-list or poll failed: {relists} {polls}")
        self.details["relist"] = relists
        self.details["confluent_poll"] = polls
        for key in ("wall", "cpu", "fetch", "decode", "apply"):
            values = [run[f"{key}_seconds"] for run in runs if f"{key}_seconds" in run]
            if values:
                self.figures[f"relist_{key}_s"] = statistics.median(values)
        self.figures["confluent_poll_wall_s"] = statistics.median(
            run["wall_seconds"] for run in polls["runs"]
        )
        self.figures["confluent_poll_cpu_s"] = statistics.median(run["cpu_seconds"] for run in polls["runs"])

    async def churn(self) -> None:
        """`--updates` updates as fast as `--churn-rate`; RSS sampled every tenth of the way."""
        options = self.options
        exporter = self.children["exporter"]
        rss_before = exporter.rss_bytes()
        self.figures["rss_before_churn_mb"] = rss_before / 2**20
        await self.get_json(self.control("/reset"), "POST")
        start_events = await self.exporter_events()
        samples = [[0, rss_before / 2**20]]
        next_mark = options.updates / 10
        cpu_before, started = self.cpu(), time.perf_counter()
        await self.set_rate(options.churn_rate)
        done, last_progress, last_done = 0, time.monotonic(), 0
        while done < options.updates:
            await asyncio.sleep(0.25)
            done = await self.exporter_events() - start_events
            if done > last_done:
                last_done, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > STALL_TIMEOUT:
                raise RuntimeError(f"updates stalled at {done} of {options.updates}")
            if done >= next_mark:
                samples.append([done, exporter.rss_bytes() / 2**20])
                next_mark += options.updates / 10
        seconds = time.perf_counter() - started
        cpu_after = self.cpu()
        await self.set_rate(0)
        await self.drain()
        stats = await self.get_json(self.control("/stats"))
        rss_after = exporter.rss_bytes()
        samples.append([stats["events"] - start_events, rss_after / 2**20])
        half = next((mb for count, mb in samples if count >= options.updates / 2), samples[-1][1])
        self.details["churn"] = {
            "requested_rate": options.churn_rate,
            "seconds": seconds,
            "cpu_percent": self.cpu_share(cpu_before, cpu_after, seconds),
            "rss_samples_mb": samples,
            "latency": stats,
            "growth_mb": (rss_after - rss_before) / 2**20,
            "growth_second_half_mb": rss_after / 2**20 - half,
        }
        self.figures["churn_updates"] = float(stats["events"] - start_events)
        self.figures["churn_rate_per_s"] = done / seconds
        self.figures["churn_apply_p99_ms"] = stats["apply"]["p99_ms"]
        self.figures["rss_after_churn_mb"] = rss_after / 2**20

    async def trim(self) -> None:
        """RSS once garbage is collected and glibc has returned its free memory: what the objects hold."""
        trimmed = await self.get_json(self.control("/trim"), "POST")
        self.details["trim"] = trimmed
        self.figures["rss_after_trim_mb"] = trimmed["rss_after_bytes"] / 2**20

    async def upstream_cost(self) -> None:
        """Requests per minute per target at default settings: the measured cost of one cycle times the
        default cycles per minute; and what the counters show from ready to now, the timed re-lists and
        polls taken out (a fair rate only once the run lasts several poll intervals)."""
        final = await self.own_metrics()
        window = (time.monotonic() - self.ready_at) / 60.0
        upstream: dict[str, Any] = {"window_minutes": window}
        ready = self.counters_at_ready

        def count(values: dict[str, float], source: str, endpoint: str) -> float:
            key = f'lenses_hq_exporter_upstream_requests_total{{endpoint="{endpoint}",source="{source}"}}'
            return values.get(key, 0.0)

        def manual(source: str, endpoint: str) -> float:
            return count(self.manual_requests, source, endpoint)

        settings = self.settings
        assert settings is not None and settings.lenses is not None
        targets = max(1, len(settings.confluent.targets))
        lenses_interval = settings.lenses.poll_interval
        confluent_interval = (
            settings.confluent.targets[0].poll_interval if settings.confluent.targets else 60.0
        )
        # One cycle's cost is what the timed re-list and polls sent: one `sync_once()`, one poll per target.
        lenses_cycle = manual("lenses", "environments") / self.options.relists
        confluent_cycle = manual("confluent", "agents") / targets
        observed_lenses = (
            count(final, "lenses", "environments")
            + count(final, "lenses", "stream")
            - count(ready, "lenses", "environments")
            - count(ready, "lenses", "stream")
            - manual("lenses", "environments")
        )
        observed_confluent = (
            count(final, "confluent", "agents")
            - count(ready, "confluent", "agents")
            - manual("confluent", "agents")
        ) / targets
        upstream.update(
            {
                "poll_interval_seconds": {"lenses": lenses_interval, "confluent": confluent_interval},
                "lenses_requests_per_cycle": lenses_cycle,
                "confluent_requests_per_cycle_per_target": confluent_cycle,
                "lenses_observed": observed_lenses,
                "confluent_observed_per_target": observed_confluent,
                "stream_connections": count(final, "lenses", "stream"),
                "sse_reconnects": sum(
                    v for k, v in final.items() if k.startswith("lenses_hq_exporter_sse_reconnects_total")
                ),
            }
        )
        self.details["upstream"] = upstream
        self.figures["upstream_lenses_per_minute"] = lenses_cycle * 60.0 / lenses_interval
        self.figures["upstream_confluent_per_minute_per_target"] = confluent_cycle * 60.0 / confluent_interval
        upstream["lenses_observed_per_minute"] = observed_lenses / window
        upstream["confluent_observed_per_minute_per_target"] = observed_confluent / window

    async def filtered(self) -> None:
        """A second exporter with filters (production tier only; capability, metadata and tool families
        denied), alone once the first is stopped: its series, scrape time and RSS beside the unfiltered."""
        await self.children.pop("exporter").stop()
        config = self.write_config(filtered=True)
        started = time.perf_counter()
        child = await self.start_ready("filtered", config)
        self.figures["filtered_initial_sync_s"] = time.perf_counter() - started
        self.figures["filtered_rss_after_sync_mb"] = child.rss_bytes() / 2**20
        _, size, body = await self.scrape("filtered", "text", keep=True)
        timings = [(await self.scrape("filtered", "text"))[0] for _ in range(self.options.scrapes)]
        series = body.count(b"\n") - body.count(b"\n#")
        self.details["filtered"] = {"text_bytes": size, "series": series, "config": FILTERS.strip()}
        self.figures["filtered_series"] = float(series)
        self.figures["filtered_scrape_text_median_ms"] = statistics.median(timings) * 1000
        await self.children.pop("filtered").stop()

    async def profiles(self) -> None:
        """py-spy recordings of the exporter: scraping (text and gzip), applying updates, re-listing."""
        binary = py_spy()
        if binary is None:
            self.details["profiles"] = {"error": "py-spy is not installed (.venv/bin/pip install py-spy)"}
            return
        options = self.options
        pid = self.children["exporter"].pid
        directory = options.work_dir / "profiles"
        profiles: dict[str, Any] = {}
        await self.set_rate(options.update_rate)
        recording = Recording(binary, pid, directory / "scrape.txt")
        await recording.start()
        for _ in range(options.scrapes):
            for encoding in ENCODINGS:
                await self.scrape("exporter", encoding)
        profiles["scrape"] = await recording.stop()
        await self.set_rate(0)
        await self.drain()
        recording = Recording(binary, pid, directory / "apply.txt")
        await recording.start()
        start = await self.exporter_events()
        await self.set_rate(options.churn_rate)
        wanted = min(options.updates, 20_000)
        while await self.exporter_events() - start < wanted:  # noqa: ASYNC110 - a counter in another process
            await asyncio.sleep(0.25)
        await self.set_rate(0)
        profiles["apply"] = await recording.stop()
        await self.drain()
        recording = Recording(binary, pid, directory / "relist.txt")
        await recording.start()
        await self.get_json(self.control("/relist?count=5"), "POST")
        profiles["relist"] = await recording.stop()
        self.details["profiles"] = profiles


class RealPrometheus:
    """Debian's Prometheus scraping the exporter at a fixed interval (gzip, its default), on loopback."""

    def __init__(
        self, binary: str, directory: Path, port: int, interval: float, session: aiohttp.ClientSession
    ) -> None:
        self.binary, self.directory, self.port, self.interval = binary, directory, port, interval
        self.session = session
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> RealPrometheus:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(
            f"""global:
  scrape_interval: {self.interval:g}s
  scrape_timeout: {min(10.0, self.interval):g}s
scrape_configs:
  - job_name: lenses-hq-exporter
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{self.port}"]
"""
        )
        listen = free_port()
        self.url = f"http://127.0.0.1:{listen}"
        log = (self.directory / "prometheus.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{listen}",
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not await self._answers("/-/ready"):
            if time.monotonic() > deadline or self.process.returncode is not None:
                raise RuntimeError(f"prometheus did not start: see {self.directory / 'prometheus.log'}")
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()

    async def _answers(self, path: str) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with self.session.get(self.url + path) as response:
                return response.status == 200
        return False

    async def query(self, expression: str) -> list[Any]:
        """An instant query's result vector."""
        async with self.session.get(
            f"{self.url}/api/v1/query",
            params={"query": expression},
            headers={"Accept-Encoding": "identity"},  # the shared session does not decompress
        ) as response:
            body = json.loads(await response.read())
        result: list[Any] = body["data"]["result"]
        return result

    async def scraped(self) -> None:
        """Wait for a successful scrape newer than this call (at most three intervals)."""
        since = time.time()
        deadline = time.monotonic() + 3 * self.interval + 30
        while time.monotonic() < deadline:
            result = await self.query('timestamp(up{job="lenses-hq-exporter"} == 1)')
            if result and float(result[0]["value"][1]) >= since:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("prometheus did not scrape the exporter")

    async def scrape_durations(self, seconds: float) -> dict[str, float]:
        """Prometheus's own `scrape_duration_seconds` of the exporter over the last `seconds`."""
        window = f'scrape_duration_seconds{{job="lenses-hq-exporter"}}[{max(1, round(seconds))}s]'
        figures = {}
        for name in ("max", "avg", "count"):
            result = await self.query(f"{name}_over_time({window})")
            figures[name] = float(result[0]["value"][1]) if result else float("nan")
        return figures


FILTERS = """
  include: {tier: production}
metrics:
  deny:
    - lenses_environment_agent_capability
    - lenses_environment_metadata_info
    - confluent_flink_agent_tool_info"""
"""The filtered run's settings: what a team keeping only production and dropping the detail families sets."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def run(options: Options) -> dict[str, Any]:
    """One run; the results as written to JSON."""
    started = datetime.datetime.now(datetime.UTC)
    connector = aiohttp.TCPConnector(limit=8)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(auto_decompress=False, connector=connector, timeout=timeout) as session:
        bench = Bench(options, session)
        await bench.run()
    return report.assemble(options, bench.figures, bench.details, started)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON and the Markdown."""
    options = parse_arguments(sys.argv[1:] if argv is None else argv)
    (options.work_dir / "logs").mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(options))
    print(report.table(results))
    options.json_path.parent.mkdir(parents=True, exist_ok=True)
    options.json_path.write_text(json.dumps(results, indent=2) + "\n")
    if options.markdown_path is not None:
        options.markdown_path.write_text(report.markdown(results))
    return 0
