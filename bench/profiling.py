"""Sampling profiles of the exporter process with py-spy (a separate tool, installed on demand:
`.venv/bin/pip install py-spy`), and their summary: the hottest frames by own time and by inclusive time."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

SAMPLING_RATE = 250
TOP = 20
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")
# Frames every sample passes through (the interpreter, the event loop, the process's entry point): left
# out of the inclusive ranking, where they would only say 100%.
_PLUMBING = re.compile(r"\((asyncio/|<frozen |selectors\.py|bench/exporter_host\.py\)$)|^(main|<module>) \(")


def py_spy() -> str | None:
    """The py-spy binary: next to this Python first, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Recording:
    """One py-spy recording of a process, from `start` until `stop`."""

    def __init__(self, binary: str, pid: int, output: Path) -> None:
        self.binary = binary
        self.pid = pid
        self.output = output
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Attach to the process (without pausing it for each sample)."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            self.binary,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            str(SAMPLING_RATE),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)  # py-spy needs a moment to attach before the phase starts

    async def stop(self) -> dict[str, Any]:
        """Detach (py-spy writes its file on SIGINT) and summarise what was recorded."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self._process.wait(), timeout=30)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if not self.output.exists():
            return {"samples": 0, "self": [], "inclusive": [], "file": str(self.output)}
        return {**summarise(self.output.read_text()), "file": str(self.output)}


def frame_name(frame: str) -> str:
    """`function (file.py:12)` → `function (package/file.py)`: lines merged, paths shortened."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({path})"


def summarise(collapsed: str, top: int = TOP) -> dict[str, Any]:
    """Share of samples per frame: own time (the innermost frame) and inclusive (anywhere on the stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not _PLUMBING.search(frame):
                inclusive[frame] += count

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[frame, round(100.0 * count / total, 1)] for frame, count in counter.most_common(top)]

    return (
        {"samples": total, "self": shares(own), "inclusive": shares(inclusive)}
        if total
        else {
            "samples": 0,
            "self": [],
            "inclusive": [],
        }
    )
