"""The container image, run the way operators run it: `demo` inside the image, scraped from the host.

Builds nothing itself: `make image-test` builds the image, then runs this module with IMAGE_TEST=1,
IMAGE and CONTAINER_ENGINE set. The plain `make test` skips it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import eventually, find, free_port, scrape

pytestmark = pytest.mark.skipif(
    os.environ.get("IMAGE_TEST") != "1", reason="container image check: run `make image-test`"
)

IMAGE = os.environ.get("IMAGE", "lenses-hq-exporter:dev")
ENGINE = os.environ.get("CONTAINER_ENGINE", "docker")
IS_PODMAN = Path(ENGINE).name == "podman"
STOP_DEADLINE = 5.0  # seconds from SIGTERM to exit: the acceptance figure for a clean shutdown


@dataclass
class Completed:
    """What a container engine command returned."""

    returncode: int
    stdout: str
    stderr: str


async def engine(*args: str, seconds: float = 60.0) -> Completed:
    """Run one container engine command and collect its output."""
    process = await asyncio.create_subprocess_exec(
        ENGINE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), seconds)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


@dataclass
class Container:
    """A running container of the image, serving `demo` on the host's loopback."""

    name: str
    port: int
    started: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def report(figure: str) -> None:
    """Print a measured figure (shown by `make image-test`, which runs pytest with -s)."""
    print(f"\nimage-test: {figure}")


@pytest.fixture
async def container() -> AsyncIterator[Container]:
    """Start `demo` in the image with host networking, without an init process, on a free port (never the
    default 9877): the port is given to the exporter's command line alone, as `docker run IMAGE
    --web.listen-address=...` gives it, so the image's health check has to find it by itself."""
    port = free_port()
    while port == 9877:
        port = free_port()
    name = f"lenses-hq-exporter-test-{uuid.uuid4().hex[:8]}"
    options = ["--network=host"]
    if not IS_PODMAN:
        # Docker runs the image's check on its own timer; a short interval keeps the test quick.
        options += ["--health-interval=1s", "--health-start-period=1s"]
    started = time.monotonic()
    result = await engine(
        "run", "--detach", "--name", name, *options, IMAGE, "demo", f"--web.listen-address=127.0.0.1:{port}"
    )
    assert result.returncode == 0, result.stderr
    try:
        yield Container(name, port, started)
    finally:
        await engine("rm", "--force", name)


async def logs(container: Container) -> str:
    """The container's output, for failure messages."""
    result = await engine("logs", container.name)
    return (result.stdout + result.stderr)[-4000:]


async def test_image_declares_how_it_runs() -> None:
    """Non-root numeric user, the exporter's port, a health check and the console script as entrypoint."""
    result = await engine("image", "inspect", IMAGE)
    assert result.returncode == 0, result.stderr
    image = json.loads(result.stdout)[0]
    config = image["Config"]
    user = config.get("User", "")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0, user
    assert "9877/tcp" in config.get("ExposedPorts", {})
    assert config.get("Entrypoint") == ["lenses-hq-exporter"]
    health = config.get("Healthcheck") or image.get("Healthcheck") or {}
    assert health.get("Test", [None])[0] in ("CMD", "CMD-SHELL"), health
    assert "healthcheck" in health["Test"], health
    report(f"image size {image['Size'] / 1e6:.0f} MB")


async def test_demo_serves_simulated_estate(container: Container) -> None:
    """`demo` in the image serves the simulator's environments and agents on /metrics."""
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def ready() -> bool:
            try:
                return (await client.get(f"{container.url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=30.0, what=f"/readyz of the container: {await logs(container)}")
        report(f"start to ready {time.monotonic() - container.started:.1f} s")

        async def data() -> bool:
            samples = await scrape(client, f"{container.url}/metrics")
            return bool(
                find(samples, "lenses_hq_exporter_build_info")
                and find(samples, "lenses_environment_agent_connected")
                and find(samples, "confluent_flink_agent_status_phase")
            )

        await eventually(data, timeout=30.0, what="simulated environments and agents on /metrics")


async def test_health_check_follows_the_listen_address(container: Container) -> None:
    """The image's own HEALTHCHECK command reports healthy against the exporter on its non-default port."""
    if IS_PODMAN:
        # Podman runs no health-check timer on a machine without systemd: run the check on demand.
        async def healthy() -> bool:
            return (await engine("healthcheck", "run", container.name)).returncode == 0
    else:

        async def healthy() -> bool:
            result = await engine("inspect", "--format", "{{.State.Health.Status}}", container.name)
            return result.stdout.strip() == "healthy"

    await eventually(healthy, timeout=30.0, interval=0.5, what="the image's health check")


async def test_exporter_is_pid_1_and_not_root(container: Container) -> None:
    """The exporter itself is PID 1 (no init needed) and runs under a non-root user."""

    async def status() -> str:
        result = await engine("exec", container.name, "cat", "/proc/1/status")
        return result.stdout if result.returncode == 0 else ""

    text = await eventually(status, timeout=30.0, what="/proc/1/status in the container")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    uids = fields["Uid"].split()
    assert all(uid != "0" for uid in uids), fields["Uid"]
    command = await engine("exec", container.name, "cat", "/proc/1/cmdline")
    assert "lenses-hq-exporter" in command.stdout.replace("\0", " "), command.stdout


async def test_sigterm_stops_it_promptly_and_cleanly(container: Container) -> None:
    """SIGTERM to PID 1 ends the exporter with exit code 0 in under five seconds."""
    async with httpx.AsyncClient(timeout=5.0) as client:

        async def serving() -> bool:
            try:
                return (await client.get(f"{container.url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(serving, timeout=30.0, what=f"/healthz of the container: {await logs(container)}")
    sent = time.monotonic()
    signalled = await engine("kill", "--signal", "TERM", container.name)
    assert signalled.returncode == 0, signalled.stderr
    waited = await engine("wait", container.name, seconds=30.0)
    elapsed = time.monotonic() - sent
    report(f"SIGTERM to exit {elapsed:.2f} s")
    assert waited.stdout.strip() == "0", f"exit code {waited.stdout.strip()}: {await logs(container)}"
    assert elapsed < STOP_DEADLINE
