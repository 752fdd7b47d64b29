"""Fixtures of the fault matrix: the session's collector of outcomes, written to docs/reliability.md at the
end of the session only when RELIABILITY_REPORT=1 (a normal run never rewrites tracked files)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.faults.matrix import Collector, write_report


@pytest.fixture(scope="session")
def reliability() -> Iterator[Collector]:
    collector = Collector()
    yield collector
    write_report(collector, dict(os.environ))
