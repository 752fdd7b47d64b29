"""Graceful shutdown: SIGTERM while a paged Confluent listing is in flight (the simulator answers slowly)
and the Lenses live stream is open. The process exits 0 within five seconds with no traceback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from exporter.simulator.server import Simulator, SimulatorOptions
from tests.support import eventually, find, scrape

TOKEN, KEY, SECRET = "shutdown-hq-token", "shutdown-key", "shutdown-secret"
EXIT_DEADLINE = 5.0
LATENCY = 3.0  # each page takes this long: the listing is still in flight when SIGTERM arrives


def config(simulator: Simulator, directory: Path) -> Path:
    world = simulator.world
    path = directory / "exporter.yml"
    path.write_text(
        json.dumps(
            {
                "web": {"listen_address": "127.0.0.1:0"},
                "log": {"level": "debug"},
                "lenses": {"name": "hq", "url": simulator.lenses_url, "token": TOKEN, "poll_interval": "1s"},
                "confluent": {
                    "targets": [
                        {
                            "name": "flink",
                            "url": simulator.url,
                            "organization_id": world.organization_id,
                            "environment_id": world.confluent_environment_ids[0],
                            "api_key": KEY,
                            "api_secret": SECRET,
                            "page_size": 2,
                            "poll_interval": "1s",
                            "timeout": "30s",
                        }
                    ]
                },
            }
        )
    )
    path.chmod(0o600)
    return path


async def read_lines(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode("utf-8", "replace").rstrip("\n"))


async def test_sigterm_during_a_paged_listing_and_an_open_stream_exits_0_quickly(tmp_path: Path) -> None:
    options = SimulatorOptions(
        environments=3,
        agents=8,
        seed=5,
        lenses_token=TOKEN,
        confluent_api_key=KEY,
        confluent_api_secret=SECRET,
        confluent_environments=1,
        keepalive_interval=0.5,
    )
    async with Simulator(options) as simulator:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith(("LENSES_", "CONFLUENT_"))
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--config.file",
            str(config(simulator, tmp_path)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=environment,
        )
        assert process.stdout is not None and process.stderr is not None
        stdout: list[str] = []
        stderr: list[str] = []
        readers = [
            asyncio.create_task(read_lines(process.stdout, stdout)),
            asyncio.create_task(read_lines(process.stderr, stderr)),
        ]
        try:

            async def port() -> int | None:
                assert process.returncode is None, stderr
                for line in stderr:
                    if '"exporter_started"' in line:
                        return int(json.loads(line)["port"])
                return None

            metrics = f"http://127.0.0.1:{await eventually(port, what='the exporter to start')}/metrics"
            async with httpx.AsyncClient(timeout=10) as http:

                async def streaming_and_listed() -> bool:
                    samples = await scrape(http, metrics)
                    return [s.value for s in find(samples, "lenses_hq_exporter_sse_connected")] == [1.0] and [
                        s.value for s in find(samples, "lenses_hq_exporter_up", source="confluent")
                    ] == [1.0]

                await eventually(streaming_and_listed, timeout=20, what="the stream open and a first listing")
                requests = await confluent_requests(http, metrics)
                simulator.faults.latency = LATENCY

                async def listing_in_flight() -> bool:
                    return await confluent_requests(http, metrics) > requests

                await eventually(listing_in_flight, timeout=10, what="a Confluent page requested")
            assert simulator.hub.subscribers, "the live stream is not open"
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            async def exited() -> bool:
                return process.returncode is not None

            await eventually(exited, timeout=EXIT_DEADLINE, interval=0.05, what="the exporter to exit")
            took = time.monotonic() - signalled
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await asyncio.gather(*readers)
        output = "\n".join(stdout + stderr)
        assert process.returncode == 0, output
        assert "Traceback" not in output, output
        assert any('"exporter_stopped"' in line for line in stderr)
        assert took < EXIT_DEADLINE
        print(f"exited {took:.2f} s after SIGTERM")


async def confluent_requests(http: httpx.AsyncClient, metrics: str) -> float:
    samples = await scrape(http, metrics)
    return sum(
        s.value for s in find(samples, "lenses_hq_exporter_upstream_requests_total", source="confluent")
    )
