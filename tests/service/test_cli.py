"""The command line as operators run it: a subprocess, its exit code, its stdout and stderr."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import __version__
from exporter.arguments import parse_arguments, settings_from_arguments, with_command
from exporter.simulator.server import Simulator, SimulatorOptions
from tests.support import eventually, find, scrape

CONSOLE_SCRIPT = Path(sys.executable).parent / "lenses-hq-exporter"
HQ_TOKEN = "hq-token-5c2e81d7"


def clean_environment(**extra: str) -> dict[str, str]:
    """The test's environment without any variable that configures the exporter."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LENSES_", "CONFLUENT_"))}
    environ.update(extra)
    return environ


def run_cli(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ or clean_environment(),
        check=False,
    )


def write(directory: Path, text: str, name: str = "config.yml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def assert_usage_error(result: subprocess.CompletedProcess[str], field: str) -> None:
    """Exit 2 with exactly one line on stderr that names the field, and no traceback."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("lenses-hq-exporter: ")
    assert field in line, line


# --- bad configuration: exit 2, one line ----------------------------------------------------------------

BAD_CONFIGS = {
    "unknown key": (
        "lenses:\n  url: http://hq\n  token: abcd\n  pol_interval: 5s\n",
        "lenses.pol_interval: unknown key",
    ),
    "wrong type": (
        "lenses:\n  url: http://hq\n  token: abcd\n  sse: [1]\n",
        "lenses.sse: expected true or false",
    ),
    "malformed url": (
        "confluent:\n  targets:\n"
        "    - {url: 'ftp://x', organization_id: o, environment_id: e, token: abcd}\n",
        "confluent.targets[0].url: not an http(s) URL: 'ftp://x'",
    ),
    "missing token": ("lenses:\n  url: http://hq\n", "lenses.token: missing"),
    "bad duration": (
        "lenses:\n  url: http://hq\n  token: abcd\n  poll_interval: soon\n",
        "lenses.poll_interval: expected a duration like 30s, got 'soon'",
    ),
    "undefined variable": (
        "lenses:\n  url: http://hq\n  token: ${UNDEFINED_HQ_TOKEN}\n",
        "lenses.token: environment variable UNDEFINED_HQ_TOKEN is not set",
    ),
    "unreadable secret file": (
        "lenses:\n  url: http://hq\n  token_file: /nonexistent/hq-token\n",
        "lenses.token_file: cannot read /nonexistent/hq-token",
    ),
    "invalid yaml": ("lenses:\n  url: [\n", "invalid YAML at line"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_configuration_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    text, field = BAD_CONFIGS[case]
    assert_usage_error(run_cli(f"--config.file={write(tmp_path, text)}"), field)


def test_unreadable_config_file(tmp_path: Path) -> None:
    assert_usage_error(
        run_cli("--config.file", str(tmp_path / "absent.yml")), "absent.yml: cannot read the config file"
    )


def test_nothing_configured(tmp_path: Path) -> None:
    assert_usage_error(run_cli(), "no source configured")


def test_environment_only_errors(tmp_path: Path) -> None:
    result = run_cli(environ=clean_environment(LENSES_HQ_URL="http://hq:9991/api"))
    assert_usage_error(result, "LENSES_HQ_TOKEN: missing")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--shard=2", "--total-shards=2"], "--shard: must be between 0 and 1"),
        (["--total-shards=0"], "--total-shards: must be at least 1"),
        (["--shard=x"], "--shard"),
        (["--log.format=xml"], "--log.format"),
        (["--web.listen-address=nowhere"], "--web.listen-address: expected HOST:PORT"),
        (["--no-such-flag"], "--no-such-flag"),
        (["check", "--connect=yes"], "--connect"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: list[str], field: str) -> None:
    assert_usage_error(run_cli(*args), field)


# --- entry points -------------------------------------------------------------------------------------


def test_python_m_and_the_console_script_are_the_same_program() -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.fail(f"{CONSOLE_SCRIPT} is missing: install the project (pip install -e .)")
    for command in ([sys.executable, "-m", "exporter"], [str(CONSOLE_SCRIPT)]):
        result = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert (result.returncode, result.stdout.strip()) == (0, f"lenses-hq-exporter {__version__}")
        helped = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, check=False)
        assert helped.returncode == 0
        assert all(name in helped.stdout for name in ("run", "demo", "simulate", "check"))


# --- check ----------------------------------------------------------------------------------------------


def test_check_prints_a_summary_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "api-secret").write_text("confluent-secret-9d41\n")
    config = write(
        tmp_path,
        f"""
        lenses:
          name: hq
          url: http://hq.example.com:9991/api
          token: {HQ_TOKEN}
        confluent:
          targets:
            - name: prod-flink
              url: https://flink.us-east-1.aws.confluent.cloud
              organization_id: 7f5c1a2b-0000-4000-8000-000000000001
              environment_id: env-abc123
              api_key: ${{FLINK_KEY}}
              api_secret_file: api-secret
              tier: production
        """,
    )
    result = run_cli(
        "check", f"--config.file={config}", environ=clean_environment(FLINK_KEY="flink-key-77ab")
    )
    assert result.returncode == 0, result
    out = result.stdout
    assert f"configuration OK ({config})" in out
    assert "lenses/hq: http://hq.example.com:9991/api, token from the config file" in out
    assert "confluent/prod-flink: https://flink.us-east-1.aws.confluent.cloud" in out
    assert f"secret from file {tmp_path / 'api-secret'}" in out
    for secret in (HQ_TOKEN, "confluent-secret-9d41", "flink-key-77ab"):
        assert secret not in out + result.stderr


def test_check_lists_each_hq_with_its_filters(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"""
        lenses:
          targets:
            - name: hq-eu
              url: http://hq-eu.example.com/api
              token: {HQ_TOKEN}
              include: {{tier: production}}
            - name: hq-us
              url: http://hq-us.example.com/api
              token: {HQ_TOKEN}
              exclude: {{environment: "sandbox-.*"}}
        metrics:
          deny: [lenses_environment_agent_capability]
        """,
    )
    result = run_cli("check", f"--config.file={config}", environ=clean_environment())
    assert result.returncode == 0, result
    lines = [line.strip() for line in result.stdout.splitlines()]
    (eu,) = [line for line in lines if line.startswith("lenses/hq-eu: ")]
    (us,) = [line for line in lines if line.startswith("lenses/hq-us: ")]
    assert eu.endswith(", include tier=~production") and us.endswith(", exclude environment=~sandbox-.*")
    assert "metrics: deny lenses_environment_agent_capability" in lines
    assert HQ_TOKEN not in result.stdout + result.stderr


def test_check_refuses_an_unknown_family_naming_the_field(tmp_path: Path) -> None:
    config = write(
        tmp_path, f"lenses: {{url: http://hq, token: {HQ_TOKEN}}}\nmetrics: {{deny: [lenses_nope]}}\n"
    )
    result = run_cli("check", f"--config.file={config}", environ=clean_environment())
    assert result.returncode == 2
    assert "metrics.deny[0]: unknown family 'lenses_nope'" in result.stderr


def test_run_refuses_an_unknown_family_at_startup_naming_the_field(tmp_path: Path) -> None:
    config = write(
        tmp_path, f"lenses: {{url: http://hq, token: {HQ_TOKEN}}}\nmetrics: {{allow: ['flink_*']}}\n"
    )
    result = run_cli("run", f"--config.file={config}", "--web.listen-address=127.0.0.1:0")
    assert_usage_error(result, "metrics.allow[0]")
    assert "glob matches no family 'flink_*'" in result.stderr


def test_check_warns_about_a_world_readable_file_with_secrets(tmp_path: Path) -> None:
    config = write(tmp_path, f"lenses:\n  url: http://hq\n  token: {HQ_TOKEN}\n")
    config.chmod(0o644)
    result = run_cli("check", "--config.file", str(config))
    assert result.returncode == 0
    (line,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["event"] == "config_secrets_world_readable"
    assert line["level"] == "warning"
    assert line["fields"] == ["lenses.token"]
    assert HQ_TOKEN not in result.stderr


def test_check_from_the_environment_alone() -> None:
    result = run_cli(
        "check",
        environ=clean_environment(
            CONFLUENT_FLINK_URL="https://flink.eu-west-1.aws.confluent.cloud",
            CONFLUENT_ORGANIZATION_ID="org-1",
            CONFLUENT_ENVIRONMENT_IDS="env-a,env-b",
            CONFLUENT_API_KEY="key-a1b2",
            CONFLUENT_API_SECRET="secret-c3d4",
        ),
    )
    assert result.returncode == 0, result
    assert "configuration OK (environment)" in result.stdout
    assert "confluent/env-a:" in result.stdout and "confluent/env-b:" in result.stdout
    assert "API key from env CONFLUENT_API_KEY" in result.stdout


# --- run ------------------------------------------------------------------------------------------------


class Running:
    """A subprocess whose stdout and stderr lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout, self.stdout)),
            asyncio.create_task(self._read(process.stderr, self.stderr)),
        ]

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: list[str]) -> None:
        async for line in stream:
            into.append(line.decode("utf-8", "replace").rstrip("\n"))

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        found = []
        for line in self.stderr:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
        return found

    async def event(self, name: str, within: float = 20.0) -> dict[str, Any]:
        """Wait for the first log line with this event name."""

        async def find() -> dict[str, Any] | None:
            if self.process.returncode is not None:
                pytest.fail(f"exited {self.process.returncode} before {name}: {self.stderr}")
            return next((e for e in self.events() if e.get("event") == name), None)

        found: dict[str, Any] = await eventually(find, timeout=within, what=f"log event {name}")
        return found

    async def terminate(self, within: float = 20.0) -> int:
        """SIGTERM, then wait for the exit code (and every output line)."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), within)
        await asyncio.gather(*self._readers)
        return code

    def output(self) -> str:
        return "\n".join(self.stdout + self.stderr)


@contextlib.asynccontextmanager
async def running(args: Sequence[str], environ: dict[str, str] | None = None) -> AsyncIterator[Running]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ or clean_environment(),
    )
    handle = Running(process)
    try:
        yield handle
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_run_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    config = write(tmp_path, f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n  sse: false\n")
    async with running(["--config.file", str(config), "--web.listen-address=127.0.0.1:0"]) as exporter:
        started = await exporter.event("exporter_started")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{started['port']}/healthz")
        assert response.status_code == 200
        assert await exporter.terminate() == 0
    assert any(e.get("event") == "exporter_stopped" for e in exporter.events())
    assert "Traceback" not in exporter.output()


async def test_run_exits_1_when_the_address_is_taken(tmp_path: Path) -> None:
    config = write(tmp_path, f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n")
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exporter",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_environment(),
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        holder.close()
    assert process.returncode == 1
    failed = [json.loads(line) for line in stderr.decode().splitlines() if '"startup_failed"' in line]
    assert failed and "Traceback" not in stderr.decode()


# --- against the simulator ------------------------------------------------------------------------------

FLINK_KEY = "flink-key-0a1b2c"
FLINK_SECRET = "flink-secret-3d4e5f"
WRONG_SECRET = "wrong-secret-6a7b8c"


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[Simulator]:
    options = SimulatorOptions(
        environments=3,
        agents=4,
        seed=3,
        lenses_token=HQ_TOKEN,
        confluent_api_key=FLINK_KEY,
        confluent_api_secret=FLINK_SECRET,
        churn=False,
    )
    async with Simulator(options, host="127.0.0.1", port=0) as running_simulator:
        yield running_simulator


def simulator_config(
    directory: Path, sim: Simulator, *, token: str = HQ_TOKEN, secrets: Sequence[str] = (FLINK_SECRET,)
) -> Path:
    """A config for the simulator: the Lenses token from a file, one Confluent target per given secret."""
    (directory / "hq-token").write_text(token + "\n")
    environment_id = sim.world.confluent_environment_ids[0]
    targets = "".join(
        f"""
            - name: flink-{index}
              url: {sim.url}
              organization_id: {sim.world.organization_id}
              environment_id: {environment_id}
              api_key: {FLINK_KEY}
              api_secret: {secret}
              poll_interval: 1s
        """
        for index, secret in enumerate(secrets)
    )
    return write(
        directory,
        f"""
        lenses:
          name: hq
          url: {sim.url}/api
          token_file: hq-token
          poll_interval: 1s
        confluent:
          targets:
        """
        + targets,
    )


async def run_check(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "check",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_environment(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_check_connect_reports_reachable_targets(tmp_path: Path) -> None:
    async with simulator() as sim:
        config = simulator_config(tmp_path, sim)
        code, out, err = await run_check(f"--config.file={config}", "--connect")
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert any(line.startswith("lenses/hq: reachable (request id ") for line in lines), out
    assert any(line.startswith("confluent/flink-0: reachable (request id ") for line in lines), out


async def test_check_connect_reports_auth_failures_with_the_request_id(tmp_path: Path) -> None:
    async with simulator() as sim:
        config = simulator_config(tmp_path, sim, token="not-the-token", secrets=(WRONG_SECRET,))
        code, out, err = await run_check(f"--config.file={config}", "--connect")
        answered = {record.status for record in sim.requests}
    assert code == 1, (out, err)
    (lenses,) = [line for line in out.splitlines() if line.startswith("lenses/hq: ")]
    (confluent,) = [line for line in out.splitlines() if line.startswith("confluent/flink-0: ")]
    for line in (lenses, confluent):
        assert line.split(": ")[1] == "auth failed", line
        assert "(request id " in line
    assert 401 in answered
    for secret in ("not-the-token", WRONG_SECRET):
        assert secret not in out + err


async def test_check_connect_reports_unreachable_targets(tmp_path: Path) -> None:
    config = write(
        tmp_path, "lenses:\n  name: hq\n  url: http://127.0.0.1:1/api\n  token: abcd\n  timeout: 2s\n"
    )
    code, out, _ = await run_check(f"--config.file={config}", "--connect")
    assert code == 1
    assert "lenses/hq: unreachable" in out


async def test_secret_values_never_reach_the_output(tmp_path: Path) -> None:
    async with simulator() as sim:
        config = simulator_config(tmp_path, sim, secrets=(FLINK_SECRET, WRONG_SECRET))
        args = ["run", f"--config.file={config}", "--web.listen-address=127.0.0.1:0", "--log.level=debug"]
        async with running(args) as exporter, httpx.AsyncClient() as client:
            started = await exporter.event("exporter_started")
            metrics = f"http://127.0.0.1:{started['port']}/metrics"

            async def synced() -> bool:
                samples = await scrape(client, metrics)
                up = {s.labels.get("target"): s.value for s in find(samples, "lenses_hq_exporter_up")}
                return up == {"hq": 1.0, "flink-0": 1.0, "flink-1": 0.0}

            await eventually(synced, timeout=20, what="every target synced once")
            await exporter.event("sync_failed")
            assert await exporter.terminate() == 0
    output = exporter.output()
    assert "sync_failed" in output  # the wrong secret's failure was logged...
    basic = [base64.b64encode(f"{FLINK_KEY}:{s}".encode()).decode() for s in (FLINK_SECRET, WRONG_SECRET)]
    for secret in (HQ_TOKEN, FLINK_KEY, FLINK_SECRET, WRONG_SECRET, *basic):
        assert secret not in output, (
            f"secret {secret[:6]}... appears in the exporter's output"
        )  # ...without it


async def test_demo_serves_the_simulated_fleet(tmp_path: Path) -> None:
    async with running(["demo", "--web.listen-address=127.0.0.1:0"]) as demo, httpx.AsyncClient() as client:

        async def metrics_url() -> str | None:
            if demo.process.returncode is not None:
                pytest.fail(f"demo exited {demo.process.returncode}: {demo.output()}")
            found = [line.split()[-1] for line in demo.stdout if line.strip().startswith("metrics:")]
            return found[0] if found else None

        url = await eventually(metrics_url, timeout=20, what="the demo's metrics URL")

        async def populated() -> bool:
            samples = await scrape(client, url)
            environments = find(samples, "lenses_environment_info")
            agents = find(samples, "confluent_flink_agent_info")
            targets = {s.labels["target"] for s in find(samples, "lenses_hq_exporter_up", source="confluent")}
            return len(environments) >= 24 and len(agents) >= 20 and len(targets) == 2

        await eventually(populated, timeout=30, what="environments and agents of the demo")
        landing = await client.get(url.removesuffix("/metrics") + "/")
        assert landing.status_code == 200
        assert await demo.terminate() == 0


async def test_simulate_serves_until_sigterm() -> None:
    args = ["simulate", "--listen=127.0.0.1:0", "--environments=2", f"--lenses-token={HQ_TOKEN}"]
    async with running(args) as served, httpx.AsyncClient() as client:

        async def lenses_url() -> str | None:
            if served.process.returncode is not None:
                pytest.fail(f"simulate exited {served.process.returncode}: {served.output()}")
            found = [line.split()[3] for line in served.stdout if line.startswith("Lenses HQ simulator:")]
            return found[0] if found else None

        url = await eventually(lenses_url, timeout=20, what="the simulator's URL")
        response = await client.get(f"{url}/v1/environments", headers={"Authorization": f"Bearer {HQ_TOKEN}"})
        assert response.status_code == 200
        assert len(response.json()["items"]) == 2
        assert await served.terminate() == 0


def test_check_validates_the_web_config_file(tmp_path: Path) -> None:
    write(tmp_path, "tls_server_config:\n  cert_file: missing.crt\n", name="web.yml")
    config = write(
        tmp_path, f"web:\n  config_file: web.yml\nlenses:\n  url: http://hq\n  token: {HQ_TOKEN}\n"
    )
    result = run_cli("check", f"--config.file={config}")
    assert_usage_error(result, "tls_server_config")


def test_check_refuses_a_duplicate_key_in_the_web_config_file(tmp_path: Path) -> None:
    write(tmp_path, "rate_limit:\n  interval: 1s\n  interval: 2s\n  burst: 1\n", name="web.yml")
    config = write(
        tmp_path, f"web:\n  config_file: web.yml\nlenses:\n  url: http://hq\n  token: {HQ_TOKEN}\n"
    )
    result = run_cli("check", f"--config.file={config}")
    assert_usage_error(result, "web.config_file")
    assert "duplicate key 'interval'" in result.stderr


def test_the_command_may_come_after_the_flags() -> None:
    assert with_command(["--log.level=debug", "check", "--connect"]) == [
        "check",
        "--log.level=debug",
        "--connect",
    ]
    assert with_command(["--config.file", "check"]) == ["run", "--config.file", "check"]  # a file named check
    assert with_command([]) == ["run"]
    assert with_command(["--version"]) == ["--version"]


def test_flags_override_the_file(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"web:\n  listen_address: ':9100'\nlog:\n  level: debug\n"
        f"lenses:\n  url: http://hq\n  token: {HQ_TOKEN}\n",
    )
    arguments = parse_arguments(
        [
            f"--config.file={config}",
            "--web.listen-address=127.0.0.1:9200",
            "--log.format=console",
            "--shard=1",
            "--total-shards=3",
        ]
    )
    settings = settings_from_arguments(arguments, {})
    assert settings.web.listen_address == "127.0.0.1:9200"
    assert (settings.log_level, settings.log_format) == ("debug", "console")
    assert (settings.shard.index, settings.shard.total) == (1, 3)
