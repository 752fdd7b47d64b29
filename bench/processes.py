"""Starting the benchmark's servers as child processes, each announcing its ports on one stdout line, and
stopping them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import READY_PREFIX, cpu_seconds, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE = 10.0


class ChildFailed(RuntimeError):
    """A child exited or stayed silent before announcing itself; the message ends with its log's tail."""


class Child:
    """A running child process and what it announced."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, ready: dict[str, Any], log: Path):
        self.name = name
        self.process = process
        self.ready = ready
        self.log = log
        self.pid = process.pid

    @classmethod
    async def start(
        cls, name: str, module: str, arguments: list[str], log_dir: Path, ready_within: float = 600.0
    ) -> Child:
        """Run `python -m module arguments...` and wait for its ready line (stderr goes to a log file)."""
        log = log_dir / f"{name}.log"
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *arguments,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                cwd=ROOT,
                env=environment,
            )
        try:
            ready = await asyncio.wait_for(_ready_line(process), ready_within)
        except (TimeoutError, ChildFailed) as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            tail = log.read_text(errors="replace")[-2000:]
            raise ChildFailed(
                f"{name} did not start ({error or 'timed out'}); its log ends:\n{tail}"
            ) from None
        return cls(name, process, ready, log)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far."""
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Resident set size now."""
        return rss_bytes(self.pid)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def _ready_line(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise ChildFailed(f"exited with {await process.wait()}")
        text = line.decode(errors="replace")
        if text.startswith(READY_PREFIX):
            ready: dict[str, Any] = json.loads(text[len(READY_PREFIX) :])
            return ready
