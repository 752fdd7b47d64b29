"""Matrix rows about credentials and trust: credentials rotated upstream and on disk, wrong credentials
then fixed (both without a restart), and an upstream whose TLS certificate comes from an unknown CA (a
clear reason, then recovery once `tls.ca_file` names the CA)."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from exporter.config import TLSSettings
from exporter.config.secrets import Secret
from exporter.simulator.server import SHUTDOWN_TIMEOUT, Simulator
from tests.faults.matrix import Collector, Outcome, seconds
from tests.faults.rig import (
    API_SECRET,
    DETECTION_DEADLINE,
    LENSES_TOKEN,
    RECOVERY_DEADLINE,
    SOURCES,
    STREAM_DEADLINE,
    State,
    rig,
    simulator_options,
)
from tests.support import free_port
from tests.web.tls_certificates import CertificateAuthority


def write(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    return path


async def test_credentials_rotated_upstream_and_on_disk(reliability: Collector, tmp_path: Path) -> None:
    token = write(tmp_path / "token", LENSES_TOKEN)
    secret = write(tmp_path / "secret", API_SECRET)
    async with rig(
        lenses={"token": Secret(file=token)}, confluent={"api_secret": Secret(file=secret)}
    ) as running:
        await running.healthy()
        failures_before = (await running.state()).failures
        rotated_at = time.time()
        running.sim.set_lenses_token("matrix-hq-token-rotated")
        running.sim.options.confluent_api_secret = "matrix-secret-rotated"
        write(token, "matrix-hq-token-rotated")
        write(secret, "matrix-secret-rotated")
        rotated = time.monotonic()
        took, state = await running.until(
            lambda s: all(s.last_success[x] > rotated_at + 0.01 and s.up[x] == 1 for x in SOURCES),
            deadline=RECOVERY_DEADLINE,
            what="a successful poll with the rotated credentials",
        )
        del rotated
        for source in SOURCES:
            auth_failures = {
                reason
                for (name, _, reason), count in state.failures.items()
                if name == source and count > failures_before.get((name, _, reason), 0)
            }
            reliability.record(
                Outcome(
                    "token-rotated",
                    source,
                    "nothing to detect" if not auth_failures else ", ".join(sorted(auth_failures)),
                    f"{seconds(took)} (next poll, no restart)",
                    "up 1 throughout" + ("; the open stream stays open" if source == "lenses" else ""),
                    "current",
                )
            )


async def test_wrong_credentials_then_fixed(reliability: Collector, tmp_path: Path) -> None:
    token = write(tmp_path / "token", "a-wrong-token")
    secret = write(tmp_path / "secret", "a-wrong-secret")
    async with rig(
        lenses={"token": Secret(file=token)}, confluent={"api_secret": Secret(file=secret)}
    ) as running:
        started = time.monotonic()
        detected, state = await running.until(
            lambda s: (
                all(s.up[x] == 0 and s.failures for x in SOURCES)
                and ("lenses", "environments", "http_401") in s.failures
                and ("confluent", "agents", "http_401") in s.failures
            ),
            deadline=DETECTION_DEADLINE,
            what="401 on both",
        )
        page = await running.landing()
        stream_failures = state.failures.get(("lenses", "stream", "http_401"), 0)
        write(token, LENSES_TOKEN)
        write(secret, API_SECRET)
        cleared = time.monotonic()
        recovered, _ = await running.until(
            lambda s: all(s.up[x] == 1 and s.names(x) == running.world_names(x) for x in SOURCES),
            deadline=RECOVERY_DEADLINE,
            what="recovery once the files are fixed",
        )
        await running.until(lambda s: s.sse_connected == 1, deadline=STREAM_DEADLINE, what="the stream open")
        stream_back = time.monotonic() - cleared
        del started
        for source in SOURCES:
            reliability.record(
                Outcome(
                    "401-then-fixed",
                    source,
                    seconds(detected) + " (no retries for 401)",
                    seconds(recovered)
                    + (f" (stream open after {seconds(stream_back)})" if source == "lenses" else ""),
                    f'up 0 (http_401); "{page[source].last_error}"'
                    + (
                        f"; stream reconnecting ({stream_failures:g} stream 401s)"
                        if source == "lenses"
                        else ""
                    ),
                    "none yet",
                )
            )


@asynccontextmanager
async def tls_simulator(directory: Path, port: int) -> AsyncIterator[tuple[Simulator, CertificateAuthority]]:
    """The simulator's app served over TLS with a certificate from a CA made for the test."""
    authority = CertificateAuthority(directory, "upstream")
    issued = authority.issue("simulator", ip_addresses=("127.0.0.1",))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert_file, issued.key_file)
    simulator = Simulator(simulator_options(), host="127.0.0.1", port=port)
    runner = web.AppRunner(
        simulator.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT, handler_cancellation=True
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    simulator.url = f"https://127.0.0.1:{port}"
    simulator.world.base_url = simulator.url
    try:
        yield simulator, authority
    finally:
        simulator.hub.close()
        await runner.cleanup()


async def test_untrusted_tls_certificate_then_trusted_ca(reliability: Collector, tmp_path: Path) -> None:
    port = free_port()
    async with tls_simulator(tmp_path, port) as (_, authority):
        async with rig(start_simulator=False, scheme="https", port=port) as running:
            started = time.monotonic()
            page = await running.until_landing(
                lambda p: all(p[s].state == "down" for s in SOURCES), deadline=DETECTION_DEADLINE, what="down"
            )
            detected = time.monotonic() - started
            state = await running.state()
            reasons = {source: state.reasons(source, since=empty()) for source in SOURCES}
            for source in SOURCES:
                assert state.up[source] == 0
                assert "certificate" in page[source].last_error.lower(), page[source]
        restarted = time.monotonic()
        async with rig(
            start_simulator=False, scheme="https", port=port, tls=TLSSettings(ca_file=authority.cert_file)
        ) as trusted:
            recovered, _ = await trusted.until(
                lambda s: all(s.up.get(x) == 1 for x in SOURCES) and s.sse_connected == 1,
                deadline=RECOVERY_DEADLINE,
                what="up with the CA trusted",
            )
            recovered = time.monotonic() - restarted
    for source in SOURCES:
        reliability.record(
            Outcome(
                "tls-untrusted",
                source,
                seconds(detected) + " (first sync)",
                seconds(recovered) + " (restarted with tls.ca_file)",
                f'up 0 ({", ".join(sorted(reasons[source]))}); "{page[source].last_error}"',
                "none exported",
            )
        )


def empty() -> State:
    return State({}, {}, 0, {}, {}, {"lenses": frozenset(), "confluent": frozenset()}, [])
