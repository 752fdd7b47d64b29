"""Config and secret files that are not regular files, too large or not ASCII; secrets in URLs; signals.
Each case runs the real command line in a subprocess, so a read that would block shows as a timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from exporter.config import ConfigError, load_settings
from exporter.config.secrets import Secret
from exporter.simulator.server import Simulator
from tests.lenses.lenses_fixtures import (
    TOKEN,
    RunningExporter,
    lenses_settings,
    running_exporter,
    simulator_options,
)
from tests.service.test_cli import HQ_TOKEN, assert_usage_error, clean_environment, running, write
from tests.support import eventually

SECRET_IN_URL = "url-secret-7d1c09"


def check(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`check` in a subprocess; a hang (a blocking read) fails the test instead of stalling the suite."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "exporter", "check", *args],
            capture_output=True,
            text=True,
            timeout=20,
            env=environ or clean_environment(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("check did not finish: a read blocked")


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe; a reader left blocked on it is released at the end."""
    path = tmp_path / "pipe"
    os.mkfifo(path)
    yield path
    release(path)


def release(path: Path) -> None:
    """Open the pipe for writing without blocking when a reader waits on it (so a blocked reader returns)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # nobody is reading: nothing to release
    os.close(descriptor)


def lenses_config(directory: Path, token_line: str) -> Path:
    return write(directory, f"lenses:\n  url: http://127.0.0.1:1/api\n  {token_line}\n")


def test_a_fifo_as_the_config_file_is_a_clear_error(fifo: Path) -> None:
    result = check("--config.file", str(fifo))
    assert_usage_error(result, str(fifo))
    assert "not a regular file" in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_token_file_that_is_not_a_regular_file_is_a_clear_error(
    tmp_path: Path, fifo: Path, kind: str
) -> None:
    path = {"fifo": fifo, "directory": tmp_path, "device": Path("/dev/zero")}[kind]
    result = check("--config.file", str(lenses_config(tmp_path, f"token_file: {path}")))
    assert_usage_error(result, "lenses.token_file")
    assert "not a regular file" in result.stderr


def test_a_huge_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 2_000_000)
    result = check("--config.file", str(lenses_config(tmp_path, f"token_file: {token}")))
    assert_usage_error(result, "lenses.token_file")
    assert "larger than" in result.stderr


def test_a_byte_order_mark_and_whitespace_around_a_token_are_stripped(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_bytes(b"\xef\xbb\xbf  " + HQ_TOKEN.encode() + b" \r\n")
    result = check("--config.file", str(lenses_config(tmp_path, f"token_file: {token}")))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("content", ["tøken-with-non-ascii", "two\nlines"])
def test_a_token_that_cannot_be_an_http_header_is_refused_by_check(tmp_path: Path, content: str) -> None:
    token = tmp_path / "token"
    token.write_text(content, encoding="utf-8")
    result = check("--config.file", str(lenses_config(tmp_path, f"token_file: {token}")))
    assert_usage_error(result, "lenses.token_file")
    assert content not in result.stderr


def test_a_web_config_file_that_is_a_fifo_is_a_clear_error(tmp_path: Path, fifo: Path) -> None:
    config = write(
        tmp_path,
        f"web:\n  config_file: {fifo}\nlenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n",
    )
    result = check("--config.file", str(config))
    assert_usage_error(result, "web.config_file")


@pytest.mark.parametrize(
    "environ",
    [
        {"LENSES_HQ_URL": f"https://hq.example/api?token={SECRET_IN_URL}", "LENSES_HQ_TOKEN": HQ_TOKEN},
        {"LENSES_HQ_URL": f"hq.example/{SECRET_IN_URL}", "LENSES_HQ_TOKEN": HQ_TOKEN},
        {"LENSES_HQ_URL": f"https://{SECRET_IN_URL}@hq.example/api", "LENSES_HQ_TOKEN": HQ_TOKEN},
    ],
)
def test_a_secret_in_lenses_hq_url_is_not_echoed(environ: dict[str, str]) -> None:
    result = check(environ=clean_environment(**environ))
    assert_usage_error(result, "LENSES_HQ_URL")
    assert SECRET_IN_URL not in result.stderr


@pytest.mark.parametrize("value", [SECRET_IN_URL, f"https://hq.example/api?token={SECRET_IN_URL}"])
def test_a_secret_expanded_into_a_url_is_not_echoed(tmp_path: Path, value: str) -> None:
    config = write(tmp_path, f"lenses:\n  url: ${{HQ_URL}}\n  token: {HQ_TOKEN}\n")
    result = check("--config.file", str(config), environ=clean_environment(HQ_URL=value))
    assert_usage_error(result, "lenses.url")
    assert SECRET_IN_URL not in result.stderr


async def test_hup_and_usr_signals_do_not_stop_the_exporter(tmp_path: Path) -> None:
    config = write(tmp_path, f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n  sse: false\n")
    async with running(["--config.file", str(config), "--web.listen-address=127.0.0.1:0"]) as exporter:
        await exporter.event("exporter_started")
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            exporter.process.send_signal(sig)
        logged = await exporter.event("signal_ignored")
        assert logged["signal"] in ("SIGHUP", "SIGUSR1", "SIGUSR2")
        assert exporter.process.returncode is None
        assert await exporter.terminate() == 0
    assert "Traceback" not in exporter.output()


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM installed (its `SigCgt` mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
def test_sigterm_at_any_moment_of_start_up_exits_0(tmp_path: Path, delay: float) -> None:
    """From the moment the program can run code at all: before its first line takes SIGTERM over, the
    interpreter itself is starting (about 50 ms on this machine, longer under load). The delay counts from
    the moment the process catches SIGTERM, read off /proc, so a loaded machine cannot move the moments."""
    config = write(tmp_path, f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n  sse: false\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--web.listen-address=127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_environment(),
    )
    try:
        deadline = time.monotonic() + 30
        while not catches_sigterm(process.pid):
            assert process.poll() is None and time.monotonic() < deadline, "SIGTERM never caught"
            time.sleep(0.001)  # polling /proc: there is no event to wait on
        time.sleep(delay)  # the moment of start-up to hit, not a synchronisation
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert b"Traceback" not in stderr


async def test_a_token_file_turned_into_a_fifo_at_run_time_does_not_block_the_loop(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(HQ_TOKEN)
    config = write(
        tmp_path,
        f"lenses:\n  url: http://127.0.0.1:1/api\n  token_file: {token}\n  sse: false\n  poll_interval: 1s\n",
    )
    async with running(["--config.file", str(config), "--web.listen-address=127.0.0.1:0"]) as exporter:
        started = await exporter.event("exporter_started")
        token.unlink()
        os.mkfifo(token)
        try:

            async def token_refused() -> bool:
                return any(
                    e.get("event") == "sync_failed" and "token" in str(e.get("error"))
                    for e in exporter.events()
                )

            await eventually(token_refused, timeout=20, what="a poll refusing the token file")
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"http://127.0.0.1:{started['port']}/healthz")
            assert response.status_code == 200
            assert await exporter.terminate() == 0
        finally:
            release(token)


async def test_a_token_file_rewritten_with_non_ascii_takes_the_target_down_until_fixed(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    async with Simulator(simulator_options(environments=2)) as simulator:
        settings = lenses_settings(
            simulator, token=Secret(file=token, origin="file"), sse=False, poll_interval=0.2
        )
        async with running_exporter(settings) as exporter:
            up = "lenses_hq_exporter_up"
            await eventually(lambda: is_value(exporter, up, 1), what="up with the first token")
            with capture_logs() as logs:
                token.write_text("tøken", encoding="utf-8")
                await eventually(lambda: is_value(exporter, up, 0), what="down with a non-ASCII token")
                token.write_text("\ufeff" + TOKEN + "\n")  # fixed, as an editor may save it: BOM, newline
                await eventually(lambda: is_value(exporter, up, 1), what="up again once the file is fixed")
            failed = [entry for entry in logs if entry["event"] == "sync_failed"]
            assert failed and "token" in failed[0]["error"] and "tøken" not in str(failed)


async def is_value(exporter: RunningExporter, name: str, expected: float) -> bool:
    return await exporter.value(name, source="lenses") == expected


def test_a_file_name_that_is_not_utf8_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    """A lone surrogate (what an undecodable byte of a name becomes) cannot reach the OS as a path."""
    config = tmp_path / "config.yml"
    config.write_text(
        f'web:\n  config_file: "{tmp_path}/\\ud800"\nlenses:\n  url: http://hq/api\n  token: t\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert str(caught.value).startswith("web.config_file: ")
