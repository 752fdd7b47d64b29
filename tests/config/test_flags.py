"""The flags and values other exporters' docs use (exporter-toolkit and promslog spellings), run as
operators run them: the exporter in a subprocess, spoken to over HTTP(S) on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from exporter import __version__
from exporter.arguments import parse_arguments, settings_from_arguments
from tests.service.test_cli import HQ_TOKEN, assert_usage_error, clean_environment, run_cli, running, write
from tests.support import eventually, find, free_port, parse_samples
from tests.web.test_listener_security import PKI, hashed

# A source that never answers: the exporter serves its own endpoints, and logs failing syncs.
UNREACHABLE_HQ = f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n  sse: false\n"

# One logfmt pair: a bare key, `=`, then a bare value (no space, quote or `=`) or a quoted one.
LOGFMT_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s="]*)(?: |$)')


def logfmt(line: str) -> dict[str, str]:
    """The pairs of one logfmt line (quoted values unescaped); fails the test when the line is not logfmt."""
    pairs: dict[str, str] = {}
    position = 0
    while position < len(line):
        match = LOGFMT_PAIR.match(line, position)
        assert match, f"not a logfmt line at {position}: {line!r}"
        key, value = match.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", lambda escaped: {"n": "\n"}.get(escaped[1], escaped[1]), value[1:-1])
        pairs[key] = value
        position = match.end()
    assert pairs and not line.endswith(" "), f"not a logfmt line: {line!r}"
    return pairs


async def healthz(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_web_config_file_flag_serves_tls_and_basic_auth_and_wins_over_the_file(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    (tmp_path / "plain.yml").write_text("{}\n")  # the file's web.config_file: plain HTTP
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump({"tls_server_config": pki.tls(), "basic_auth_users": {"prometheus": hashed("s3cret")}})
    )
    config = write(tmp_path, f"web:\n  config_file: plain.yml\n{UNREACHABLE_HQ}")
    port = free_port()
    args = [f"--config.file={config}", f"--web.config.file={web}", f"--web.listen-address=127.0.0.1:{port}"]
    async with running(args) as exporter:
        await exporter.event("exporter_started")
        url = f"https://127.0.0.1:{port}/metrics"
        async with httpx.AsyncClient(verify=pki.client_context(), timeout=10) as client:
            assert (await client.get(url)).status_code == 401
            answered = await client.get(url, auth=("prometheus", "s3cret"))
        assert answered.status_code == 200
        assert find(parse_samples(answered.text), "lenses_hq_exporter_build_info")
        assert await exporter.terminate() == 0


async def test_telemetry_path_moves_the_metrics_and_the_landing_page_links_it(tmp_path: Path) -> None:
    config = write(tmp_path, UNREACHABLE_HQ)
    port = free_port()
    args = [f"--config.file={config}", "--web.telemetry-path=/m", f"--web.listen-address=127.0.0.1:{port}"]
    async with running(args) as exporter, httpx.AsyncClient(timeout=10) as client:
        await exporter.event("exporter_started")
        base = f"http://127.0.0.1:{port}"
        moved = await client.get(f"{base}/m")
        assert moved.status_code == 200
        assert find(parse_samples(moved.text), "lenses_hq_exporter_build_info")
        assert (await client.get(f"{base}/metrics")).status_code == 404
        assert 'href="/m"' in (await client.get(f"{base}/")).text
        assert await exporter.terminate() == 0


async def test_two_listen_addresses_serve_on_each(tmp_path: Path) -> None:
    config = write(tmp_path, UNREACHABLE_HQ)
    first, second = free_port(), free_port()
    args = [
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{first}",
        "--web.listen-address",
        f"127.0.0.1:{second}",
    ]
    async with running(args) as exporter:
        await exporter.event("exporter_started")
        for port in (first, second):
            await eventually(
                lambda port=port: healthz(f"http://127.0.0.1:{port}/healthz"), what=f"port {port}"
            )
        assert await exporter.terminate() == 0


async def test_log_level_warn_and_logfmt_lines(tmp_path: Path) -> None:
    config = write(tmp_path, UNREACHABLE_HQ)
    config.chmod(0o644)  # inline secret in a world-readable file: a warning at start
    port = free_port()
    args = [
        f"--config.file={config}",
        "--log.level=warn",
        "--log.format=logfmt",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    async with running(args) as exporter:
        await eventually(lambda: healthz(f"http://127.0.0.1:{port}/healthz"), what="the exporter serving")

        async def failed_sync_logged() -> bool:
            return any("event=sync_failed" in line for line in exporter.stderr)

        await eventually(failed_sync_logged, timeout=20, what=f"a sync_failed line: {exporter.stderr}")
        assert await exporter.terminate() == 0
    lines = [logfmt(line) for line in exporter.stderr]
    assert {line["level"] for line in lines} <= {"warning", "error"}, lines
    warned = next(line for line in lines if line["event"] == "config_secrets_world_readable")
    assert warned["fields"] == '["lenses.token"]'
    assert all(HQ_TOKEN not in line for line in exporter.stderr)


def test_warn_and_logfmt_are_accepted_in_the_file_too(tmp_path: Path) -> None:
    config = write(tmp_path, f"log:\n  level: warn\n  format: logfmt\n{UNREACHABLE_HQ}")
    settings = settings_from_arguments(parse_arguments([f"--config.file={config}"]), {})
    assert (settings.log_level, settings.log_format) == ("warning", "logfmt")


def test_version_after_other_flags() -> None:
    for args in (["--version"], ["--log.level=warn", "--version"], ["check", "--version"]):
        result = run_cli(*args)
        assert (result.returncode, result.stdout.strip()) == (0, f"lenses-hq-exporter {__version__}"), args


def test_environment_variables_set_the_web_and_log_flags(tmp_path: Path) -> None:
    web = write(tmp_path, "{}\n", name="web.yml")
    environ = {
        "LENSES_HQ_URL": "http://hq.example.com/api",
        "LENSES_HQ_TOKEN": HQ_TOKEN,
        "LENSES_HQ_EXPORTER_WEB_LISTEN_ADDRESS": "127.0.0.1:9100,[::1]:9100",
        "LENSES_HQ_EXPORTER_WEB_CONFIG_FILE": str(web),
        "LENSES_HQ_EXPORTER_WEB_TELEMETRY_PATH": "/m",
        "LENSES_HQ_EXPORTER_LOG_LEVEL": "warn",
        "LENSES_HQ_EXPORTER_LOG_FORMAT": "logfmt",
    }
    settings = settings_from_arguments(parse_arguments([]), environ)
    assert settings.web.listen_addresses == ("127.0.0.1:9100", "[::1]:9100")
    assert settings.web.config_file == web
    assert settings.web.telemetry_path == "/m"
    assert (settings.log_level, settings.log_format) == ("warning", "logfmt")
    # The flags win over the environment.
    flags = parse_arguments(["--web.listen-address=:9200", "--web.telemetry-path=/x", "--log.level=error"])
    settings = settings_from_arguments(flags, environ)
    assert settings.web.listen_addresses == (":9200",)
    assert (settings.web.telemetry_path, settings.log_level) == ("/x", "error")


@pytest.mark.parametrize(
    ("args", "environ", "field"),
    [
        (["--web.telemetry-path=metrics"], {}, "--web.telemetry-path: expected a path starting with /"),
        (["--web.telemetry-path=/healthz"], {}, "--web.telemetry-path: /healthz is taken"),
        (["--log.level=trace"], {}, "--log.level"),
        (["--web.config.file=/nonexistent/web.yml"], {}, "--web.config.file: cannot read"),
        ([], {"LENSES_HQ_EXPORTER_LOG_FORMAT": "xml"}, "LENSES_HQ_EXPORTER_LOG_FORMAT: expected one of"),
        ([], {"LENSES_HQ_EXPORTER_WEB_LISTEN_ADDRESS": "nowhere"}, "LENSES_HQ_EXPORTER_WEB_LISTEN_ADDRESS"),
    ],
)
def test_bad_flags_and_variables_exit_2_naming_them(
    args: list[str], environ: dict[str, str], field: str
) -> None:
    environment = clean_environment(
        LENSES_HQ_URL="http://127.0.0.1:1/api", LENSES_HQ_TOKEN=HQ_TOKEN, **environ
    )
    assert_usage_error(run_cli("check", *args, environ=environment), field)
