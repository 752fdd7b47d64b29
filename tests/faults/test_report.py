"""The committed docs/reliability.md is the matrix: every row has measured outcomes in it, and a normal run
of the suite leaves it alone."""

from __future__ import annotations

import re
from pathlib import Path

from tests.faults.matrix import REPORT, REPORT_VARIABLE, ROWS, Collector, Outcome, write_report


def test_the_committed_report_lists_every_row_with_an_outcome() -> None:
    text = REPORT.read_text(encoding="utf-8")
    measured = {
        match.group(1)
        for match in re.finditer(r"^\| ([a-z0-9-]+) \| [^|]+ \| (lenses|confluent) \|", text, re.M)
    }
    missing = [row.id for row in ROWS if row.id not in measured]
    assert not missing, f"docs/reliability.md has no measured outcome for {missing}: run RELIABILITY_REPORT=1"
    assert "Not measured in this run" not in text


def test_the_report_is_written_only_when_asked(tmp_path: Path) -> None:
    collector = Collector()
    collector.record(Outcome("sse-404", "lenses", "1 s", "2 s", "up 1", "kept"))
    path = tmp_path / "reliability.md"
    assert not write_report(collector, {}, path) and not path.exists()
    assert not write_report(collector, {REPORT_VARIABLE: "0"}, path) and not path.exists()
    assert not write_report(Collector(), {REPORT_VARIABLE: "1"}, path) and not path.exists()
    assert write_report(collector, {REPORT_VARIABLE: "1"}, path)
    assert "| sse-404 |" in path.read_text()


def test_rendering_orders_rows_and_names_the_unmeasured() -> None:
    collector = Collector()
    collector.record(Outcome("sse-404", "lenses", "1 s", "2 s", "up 1", "kept"))
    collector.record(Outcome("down-at-start", "confluent", "3 s", "4 s", "up 0 | x", "none"))
    text = collector.render()
    assert text.index("| down-at-start |") < text.index("| sse-404 |")
    assert "up 0 \\| x" in text
    assert "Not measured in this run" in text and "`5xx-burst`" in text
