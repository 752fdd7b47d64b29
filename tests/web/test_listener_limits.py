"""The listener under abuse: bcrypt checks bounded in number (excess refused at once), unknown users checked
at the cost of a real user, malformed requests logged as one short line, rate-limited."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.logs import configure_logging
from exporter.web.auth import MAX_CONCURRENT_CHECKS, MAX_WAITING_CHECKS
from tests.support import eventually
from tests.web.test_listener_security import http, serving

FLOOD = MAX_CONCURRENT_CHECKS + MAX_WAITING_CHECKS + 20


class Gate:
    """bcrypt.checkpw held until released, recording the hash of every check that started."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started: list[bytes] = []

    def release(self) -> None:
        self.open.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    checkpw = bcrypt.checkpw

    def gated(password: bytes, hashed_password: bytes) -> bool:
        held.started.append(hashed_password)
        held.open.wait(timeout=30)
        return checkpw(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", gated)
    yield held
    held.release()


def hashed(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


async def test_a_flood_of_wrong_passwords_is_refused_fast_beyond_a_bounded_queue(
    tmp_path: Path, gate: Gate
) -> None:
    users = {"basic_auth_users": {"prometheus": hashed("scrape-me")}}
    async with serving(tmp_path, users) as exporter, httpx.AsyncClient(timeout=30) as client:
        url = http(exporter)
        flood = [
            asyncio.create_task(client.get(url, auth=("prometheus", f"wrong-{index}")))
            for index in range(FLOOD)
        ]
        refused: Callable[[], list[httpx.Response]] = lambda: [  # noqa: E731
            task.result() for task in flood if task.done() and task.result().status_code == 503
        ]

        async def overflow_refused() -> bool:
            return len(refused()) == FLOOD - MAX_CONCURRENT_CHECKS - MAX_WAITING_CHECKS

        # While the checks are held, everything beyond the running and waiting ones is answered at once.
        await eventually(overflow_refused, what="the requests beyond the queue refused")
        assert len(gate.started) == MAX_CONCURRENT_CHECKS
        assert all(response.headers.get("Retry-After") for response in refused())
        gate.release()
        answers = await asyncio.gather(*flood)
        assert sorted({response.status_code for response in answers}) == [401, 503]
        assert (await client.get(url, auth=("prometheus", "scrape-me"))).status_code == 200


async def test_unknown_users_are_checked_at_the_cost_of_a_configured_user(tmp_path: Path, gate: Gate) -> None:
    gate.release()
    users = {"basic_auth_users": {"cheap": hashed("one", cost=4), "dear": hashed("two", cost=5)}}
    async with serving(tmp_path, users) as exporter, httpx.AsyncClient(timeout=30) as client:
        for index in range(24):
            response = await client.get(http(exporter), auth=(f"nobody-{index}", "guess"))
            assert response.status_code == 401
        costs = {int(hashed_password[4:6]) for hashed_password in gate.started}
        # Unknown names are spread over the configured users' costs, not all at the costliest: a known
        # user's cost is not a tell.
        assert costs == {4, 5}
        first = gate.started[0]
        gate.started.clear()
        await client.get(http(exporter), auth=("nobody-0", "another guess"))
        assert gate.started == [first], "the same name must be checked at the same cost every time"


async def test_malformed_requests_are_logged_as_one_short_line_rate_limited(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    try:
        async with serving(tmp_path, {}) as exporter:
            for _ in range(50):
                reader, writer = await asyncio.open_connection("127.0.0.1", exporter.port)
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header\x01: y\r\n\r\n")
                await writer.drain()
                assert b" 400 " in (await reader.read()).split(b"\r\n", 1)[0]
                writer.close()
                await writer.wait_closed()
    finally:
        configure_logging()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    server_lines = [line for line in lines if line.get("logger") == "aiohttp.server"]
    assert len(server_lines) == 1, [line.get("event") for line in server_lines]
    (line,) = server_lines
    assert line["event"] == "bad_request" and "exception" not in line
    assert len(json.dumps(line)) < 400
