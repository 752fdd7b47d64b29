"""Soak: the exporter (`run` with a config file, in its own process) against the simulator (`simulate
--churn`, in its own process) for a given time, with faults rotated through the simulator's
`/_admin/faults` endpoint. Reports resident memory, open file descriptors and sockets, asyncio tasks alive,
and every error line of the exporter's log; exits 1 when a target is missed.

Timeline: a warm-up without faults (its end is the baseline), rotating faults, then a quiet settle period
(its end is the final measurement), so baseline and final are taken in the same conditions.
Targets: resident memory grows less than 10 % from the baseline, open sockets and tasks do not grow, no
error line.

    python -m bench.soak --seconds 180          # SOAK_SECONDS is the default for --seconds
    python -m bench.soak exporter <run args>    # internal: `run` with a count of asyncio tasks (below)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
TOKEN, KEY, SECRET = "soak-hq-token-3c9d", "soak-key-51ab", "soak-secret-8e07"
SAMPLE_EVERY = 2.0
RSS_GROWTH_LIMIT = 0.10
TASKS_FILE_VARIABLE = "SOAK_TASKS_FILE"

# Faults rotated during the soak, each for one rotation period (a clear comes first every time).
FAULTS: tuple[dict[str, Any], ...] = (
    {"error_rate": 0.5},
    {"rate_limited_rate": 0.5},
    {"rate_limited_rate": 0.5, "rate_limited_headers": False},
    {"latency": 3.0},
    {"sse_drop_interval": 2.0},
    {"body_fault": "truncated"},
    {"malformed_rate": 0.3},
    {"schema_drift": True},
    {"sse_garbage": True, "sse_unknown_events": True, "sse_line_ending": "\r\n"},
    {"sse_stall": True},
    {"sse_flood_per_second": 500.0},
    {"body_fault": "wrong_content_type", "body_fault_api": "confluent"},
)


@dataclass
class Sample:
    """One look at the exporter process."""

    at: float
    phase: str
    rss: float
    fds: float
    sockets: int
    tasks: int | None
    up: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    """The soak's figures and verdict."""

    seconds: float
    warmup: float
    settle: float
    faults_applied: int
    baseline_rss: float
    final_rss: float
    rss_growth: float
    peak_rss: float
    baseline_fds: float
    final_fds: float
    baseline_sockets: int
    final_sockets: int
    peak_sockets: int
    baseline_tasks: int | None
    final_tasks: int | None
    error_lines: list[str]
    failures: list[str]
    samples: list[dict[str, Any]]

    @property
    def passed(self) -> bool:
        return not self.failures


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def open_sockets(pid: int) -> int:
    """Sockets the process holds (file descriptors that are sockets)."""
    count = 0
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(entry).startswith("socket:"):
                count += 1
    return count


def last_task_count(path: Path) -> int | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return int(lines[-1]) if lines else None


def phases(seconds: float) -> tuple[float, float, float]:
    """Warm-up, rotation period and settle time for a soak of this length."""
    warmup = min(120.0, max(30.0, seconds * 0.25))
    settle = min(60.0, max(20.0, seconds * 0.1))
    rotation = 10.0 if seconds < 600 else 30.0
    return warmup, rotation, settle


async def wait_http(
    http: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process, what: str
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get(url)).status_code < 500:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url}")


def exporter_config(directory: Path, simulator: str, state: dict[str, Any], port: int) -> Path:
    targets = [
        {
            "name": f"flink-{environment}",
            "url": simulator,
            "organization_id": state["organization_id"],
            "environment_id": environment,
            "api_key": KEY,
            "api_secret": SECRET,
            "tier": "production",
            "page_size": 10,
            "poll_interval": "5s",
            "timeout": "2s",
        }
        for environment in state["confluent_environment_ids"]
    ]
    config = {
        "web": {"listen_address": f"127.0.0.1:{port}"},
        "log": {"level": "info", "format": "json"},
        "lenses": {
            "name": "hq",
            "url": simulator + "/api",
            "token": TOKEN,
            "poll_interval": "5s",
            "timeout": "2s",
            "sse_idle_timeout": "10s",
        },
        "confluent": {"targets": targets},
    }
    path = directory / "exporter.yml"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path


async def scrape(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url)
    response.raise_for_status()
    found: dict[str, Any] = {"up": {}}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "process_resident_memory_bytes":
                found["rss"] = sample.value
            elif sample.name == "process_open_fds":
                found["fds"] = sample.value
            elif sample.name == "lenses_hq_exporter_up":
                found["up"][f"{sample.labels['source']}/{sample.labels['target']}"] = sample.value
    return found


async def soak(seconds: float, workdir: Path, out: Any = sys.stdout) -> Result:
    warmup, rotation, settle = phases(seconds)
    simulator_port, exporter_port = free_port(), free_port()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    for name in list(environment):
        if name.startswith(("LENSES_", "CONFLUENT_")):
            del environment[name]
    tasks_file = workdir / "tasks.log"
    environment[TASKS_FILE_VARIABLE] = str(tasks_file)
    simulator_log = (workdir / "simulator.log").open("wb")
    exporter_log_path = workdir / "exporter.log"
    exporter_log = exporter_log_path.open("wb")
    processes: list[asyncio.subprocess.Process] = []
    samples: list[Sample] = []
    applied = 0
    try:
        simulator = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "exporter", "simulate", "--listen", f"127.0.0.1:{simulator_port}"),
            *("--churn", "--churn-interval", "1", "--environments", "40", "--agents", "60"),
            *("--confluent-environments", "2", "--updates-per-second", "20", "--keepalive-interval", "5"),
            *("--lenses-token", TOKEN, "--confluent-api-key", KEY, "--confluent-api-secret", SECRET),
            stdout=simulator_log,
            stderr=simulator_log,
            env=environment,
            cwd=ROOT,
        )
        processes.append(simulator)
        async with httpx.AsyncClient(timeout=10) as http:
            await wait_http(http, f"{simulator_url}/_admin/state", simulator, "the simulator")
            state = (await http.get(f"{simulator_url}/_admin/state")).json()
            config = exporter_config(workdir, simulator_url, state, exporter_port)
            exporter = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bench.soak", "exporter", "run", "--config.file", str(config)),
                stdout=exporter_log,
                stderr=exporter_log,
                env=environment,
                cwd=ROOT,
            )
            processes.append(exporter)
            metrics = f"http://127.0.0.1:{exporter_port}/metrics"
            await wait_http(http, metrics, exporter, "the exporter")
            started = time.monotonic()
            next_rotation = started + warmup
            fault_end = started + seconds - settle
            next_sample = started
            print(
                f"soak: {seconds:.0f} s (warm-up {warmup:.0f} s, faults every {rotation:.0f} s, "
                f"settle {settle:.0f} s); logs in {workdir}",
                file=out,
                flush=True,
            )
            while (now := time.monotonic()) < started + seconds:
                if exporter.returncode is not None:
                    raise RuntimeError(f"the exporter exited with {exporter.returncode}")
                if now >= next_rotation and now < fault_end:
                    await http.post(f"{simulator_url}/_admin/faults/clear")
                    await http.post(f"{simulator_url}/_admin/faults", json=FAULTS[applied % len(FAULTS)])
                    applied += 1
                    next_rotation = now + rotation
                elif now >= fault_end and next_rotation != float("inf"):
                    await http.post(f"{simulator_url}/_admin/faults/clear")
                    next_rotation = float("inf")
                if now >= next_sample:
                    phase = "warmup" if now < started + warmup else "faults" if now < fault_end else "settle"
                    found = await scrape(http, metrics)
                    samples.append(
                        Sample(
                            at=round(now - started, 1),
                            phase=phase,
                            rss=found["rss"],
                            fds=found["fds"],
                            sockets=open_sockets(exporter.pid),
                            tasks=last_task_count(tasks_file),
                            up=found["up"],
                        )
                    )
                    next_sample = now + SAMPLE_EVERY
                await asyncio.sleep(0.2)
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        simulator_log.close()
        exporter_log.close()
    return judge(seconds, warmup, settle, applied, samples, exporter_log_path, processes[-1].returncode)


def judge(
    seconds: float,
    warmup: float,
    settle: float,
    applied: int,
    samples: list[Sample],
    log: Path,
    exit_code: int | None,
) -> Result:
    """Baseline: the last samples of the warm-up; final: the last samples of the settle period (both
    without faults). Medians of three for memory, the fewest for sockets and tasks at the end."""
    warm = [s for s in samples if s.phase == "warmup"][-3:]
    end = [s for s in samples if s.phase == "settle"][-3:]
    failures: list[str] = []
    if not warm or not end:
        failures.append("too short to measure: no warm-up or settle samples")
        warm = end = samples[-1:] or [Sample(0, "none", 0, 0, 0, None)]
    baseline_rss = statistics.median(s.rss for s in warm)
    final_rss = statistics.median(s.rss for s in end)
    growth = (final_rss - baseline_rss) / baseline_rss if baseline_rss else 0.0
    baseline_sockets = max(s.sockets for s in warm)
    final_sockets = min(s.sockets for s in end)
    warm_tasks = [s.tasks for s in warm if s.tasks is not None]
    end_tasks = [s.tasks for s in end if s.tasks is not None]
    baseline_tasks = max(warm_tasks) if warm_tasks else None
    final_tasks = min(end_tasks) if end_tasks else None
    errors = [line for line in log.read_text(errors="replace").splitlines() if is_error(line)]
    if growth >= RSS_GROWTH_LIMIT:
        failures.append(f"resident memory grew {growth:.1%} (limit {RSS_GROWTH_LIMIT:.0%})")
    if final_sockets > baseline_sockets:
        failures.append(f"open sockets grew from {baseline_sockets} to {final_sockets}")
    if baseline_tasks is not None and final_tasks is not None and final_tasks > baseline_tasks:
        failures.append(f"asyncio tasks grew from {baseline_tasks} to {final_tasks}")
    if errors:
        failures.append(f"{len(errors)} error lines in the exporter's log")
    if exit_code not in (0, None):
        failures.append(f"the exporter exited {exit_code} on SIGTERM")
    if applied == 0:
        failures.append("no fault was applied")
    return Result(
        seconds=seconds,
        warmup=warmup,
        settle=settle,
        faults_applied=applied,
        baseline_rss=baseline_rss,
        final_rss=final_rss,
        rss_growth=growth,
        peak_rss=max(s.rss for s in samples) if samples else 0.0,
        baseline_fds=max(s.fds for s in warm),
        final_fds=min(s.fds for s in end),
        baseline_sockets=baseline_sockets,
        final_sockets=final_sockets,
        peak_sockets=max(s.sockets for s in samples) if samples else 0,
        baseline_tasks=baseline_tasks,
        final_tasks=final_tasks,
        error_lines=errors[:20],
        failures=failures,
        samples=[asdict(s) for s in samples],
    )


def is_error(line: str) -> bool:
    """A log line at level error or worse, or anything that is not a JSON log line (a traceback)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return bool(line.strip())
    return not isinstance(entry, dict) or entry.get("level") in ("error", "critical", "exception")


def summary(result: Result) -> str:
    mib = 2**20
    return "\n".join(
        [
            f"soak: {result.seconds:.0f} s, {result.faults_applied} faults applied",
            f"  resident memory: {result.baseline_rss / mib:.1f} MiB after warm-up -> "
            f"{result.final_rss / mib:.1f} MiB at the end ({result.rss_growth:+.1%}; peak "
            f"{result.peak_rss / mib:.1f} MiB)",
            f"  open fds: {result.baseline_fds:.0f} -> {result.final_fds:.0f}; sockets: "
            f"{result.baseline_sockets} -> {result.final_sockets} (peak {result.peak_sockets})",
            f"  asyncio tasks: {result.baseline_tasks} -> {result.final_tasks}",
            f"  error lines: {len(result.error_lines)}",
            "  verdict: " + ("pass" if result.passed else "FAIL: " + "; ".join(result.failures)),
        ]
    )


# ----- the exporter with a census of its asyncio tasks ----------------------------------------------------


def run_exporter_with_task_census(arguments: list[str]) -> int:
    """`lenses-hq-exporter <arguments>`, plus a task that writes how many asyncio tasks are alive to the
    file named by SOAK_TASKS_FILE every two seconds. The exporter exposes no such figure, and this adds
    none: the census lives here, wrapped around `Exporter.start`."""
    from exporter import cli, service

    out = Path(os.environ[TASKS_FILE_VARIABLE]).open("a", buffering=1)  # noqa: SIM115 - open for the run
    original_start = service.Exporter.start

    async def census() -> None:
        while True:
            out.write(f"{len(asyncio.all_tasks()) - 1}\n")  # less the census itself
            await asyncio.sleep(SAMPLE_EVERY)

    async def start(self: service.Exporter) -> None:
        await original_start(self)
        self._tasks.append(asyncio.create_task(census()))

    service.Exporter.start = start  # type: ignore[method-assign]
    return cli.main(arguments)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["exporter"]:
        return run_exporter_with_task_census(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "1800")))
    parser.add_argument("--json", type=Path, help="write the figures and every sample here")
    parser.add_argument("--workdir", type=Path, help="where the logs go (default: a temporary directory)")
    arguments = parser.parse_args(argv)
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(arguments.seconds, workdir))
    print(summary(result), flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps({**asdict(result), "passed": result.passed}, indent=1))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
