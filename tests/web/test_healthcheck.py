"""`lenses-hq-exporter healthcheck`: the image's and the chart's probe. It finds the exporter wherever it
was told to listen (flag, environment, config file, or the address the running exporter wrote at start)
and exits 0 only when it answers."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml

from tests.service.test_cli import HQ_TOKEN, clean_environment, running, write
from tests.support import free_port
from tests.web.test_listener_security import PKI, hashed

UNREACHABLE_HQ = f"lenses:\n  url: http://127.0.0.1:1/api\n  token: {HQ_TOKEN}\n  sse: false\n"


async def healthcheck(*args: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the healthcheck command; its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        "healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environ or clean_environment(),
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_it_follows_the_address_the_running_exporter_wrote(tmp_path: Path) -> None:
    """`docker run IMAGE --web.listen-address=:9100`: the probe is given nothing but the address file."""
    config = write(tmp_path, UNREACHABLE_HQ)
    address_file = tmp_path / "address"
    environ = clean_environment(LENSES_HQ_EXPORTER_ADDRESS_FILE=str(address_file))
    port = free_port()
    args = [f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    async with running(args, environ) as exporter:
        await exporter.event("exporter_started")
        code, output = await healthcheck(environ=environ)
        assert code == 0, output
        assert f"http://127.0.0.1:{port}/healthz" in output
        assert await exporter.terminate() == 0
    assert not address_file.exists(), "a stopped exporter leaves no address behind"
    code, output = await healthcheck(environ=environ)
    assert code == 1, output


async def test_it_takes_the_listen_address_from_the_flag_the_environment_or_the_file(tmp_path: Path) -> None:
    port = free_port()
    config = write(tmp_path, f"web:\n  listen_address: '127.0.0.1:{port}'\n{UNREACHABLE_HQ}")
    async with running([f"--config.file={config}"]) as exporter:
        await exporter.event("exporter_started")
        assert (await healthcheck(f"--config.file={config}"))[0] == 0
        assert (await healthcheck(f"--web.listen-address=127.0.0.1:{port}"))[0] == 0
        from_environment = clean_environment(LENSES_HQ_EXPORTER_WEB_LISTEN_ADDRESS=f"127.0.0.1:{port}")
        assert (await healthcheck(environ=from_environment))[0] == 0
        code, output = await healthcheck(f"--web.listen-address=127.0.0.1:{free_port()}")
        assert code == 1 and "unhealthy" in output, output
        assert await exporter.terminate() == 0


async def test_with_tls_and_basic_auth(tmp_path: Path) -> None:
    """Over TLS; a 401 proves the listener serves; readiness with the probe's own credentials."""
    pki = PKI(tmp_path)
    web = tmp_path / "web.yml"
    users = {"prometheus": hashed("s3cret"), "probe": hashed("probe-pass")}
    web.write_text(yaml.safe_dump({"tls_server_config": pki.tls(), "basic_auth_users": users}))
    (tmp_path / "probe-password").write_text("probe-pass\n")
    (tmp_path / "wrong-password").write_text("nope\n")
    config = write(tmp_path, UNREACHABLE_HQ)
    port = free_port()
    listen = f"--web.listen-address=127.0.0.1:{port}"
    async with running([f"--config.file={config}", f"--web.config.file={web}", listen]) as exporter:
        await exporter.event("exporter_started")
        code, output = await healthcheck(listen, f"--web.config.file={web}")
        assert code == 0 and f"https://127.0.0.1:{port}/healthz" in output, output
        auth = ["--basic-auth.username=probe", f"--basic-auth.password-file={tmp_path / 'probe-password'}"]
        await exporter.event("sync_failed")  # the first sync is done (it failed): ready
        code, output = await healthcheck(listen, f"--web.config.file={web}", "--ready", *auth)
        assert code == 0, output
        wrong = ["--basic-auth.username=probe", f"--basic-auth.password-file={tmp_path / 'wrong-password'}"]
        code, output = await healthcheck(listen, f"--web.config.file={web}", "--ready", *wrong)
        assert code == 1 and "401" in output, output
        assert "probe-pass" not in output and "nope" not in output
        assert await exporter.terminate() == 0


async def test_bad_usage_exits_2() -> None:
    code, output = await healthcheck("--web.listen-address=nowhere")
    assert code == 2 and output.startswith("lenses-hq-exporter: --web.listen-address"), output
