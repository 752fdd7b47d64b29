"""The fleet-scale benchmark as a smoke test: the harness runs end to end at 500 environments and 500 agents
and reports every figure. No figure is held to a target here (timings on a shared CI machine say little)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import percentile
from bench.profiling import summarise
from bench.report import PROMETHEUS_FIGURES, REQUIRED_FIGURES

ROOT = Path(__file__).resolve().parents[2]


MAY_BE_ZERO = {"gc_pause_p99_ms", "gc_pause_max_ms"}  # a short run may see no collection at all


@pytest.mark.slow
def test_harness_reports_every_figure(tmp_path: Path) -> None:
    json_path, markdown_path = tmp_path / "latest.json", tmp_path / "RESULTS.md"
    command = [
        sys.executable,
        "-m",
        "bench",
        *("--environments", "500", "--agents", "500", "--scrapes", "2", "--updates", "1000"),
        *("--probes", "2", "--relists", "1", "--churn-rate", "1000"),
        *("--cost-window", "3", "--prometheus-interval", "1"),
        *("--json", str(json_path), "--markdown", str(markdown_path), "--work-dir", str(tmp_path / "run")),
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr[-4000:]

    results = json.loads(json_path.read_text())
    figures = results["figures"]
    required = list(REQUIRED_FIGURES)
    if shutil.which("prometheus") is not None:
        required += PROMETHEUS_FIGURES
    elif os.environ.get("CI") == "true":
        pytest.fail("the cost phase needs Debian's prometheus under CI")
    missing = [name for name in required if name not in figures]
    assert not missing, f"figures missing from the JSON: {missing}"
    not_positive = {
        name: value
        for name, value in figures.items()
        if not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and name not in MAY_BE_ZERO)
    }
    assert not not_positive, f"figures that are not positive numbers: {not_positive}"
    assert results["meta"]["environments"] == 500 and results["meta"]["agents"] == 500
    assert results["details"]["simulator"]["agents_listed"] == 500
    assert figures["churn_updates"] >= 1000
    assert results["details"]["scrape"]["exporter"]["text"]["count"] == 2
    assert "scrape /metrics text, median" in finished.stdout
    # The filtered run keeps the production tier only and drops detail families: fewer series.
    assert 0 < figures["filtered_series"] < figures["series"]
    assert results["details"]["filtered"]["series"] == figures["filtered_series"]
    assert "scrape /metrics text, filtered, median" in finished.stdout
    assert "CPU per update / floor, one figure" in finished.stdout
    cost = results["details"]["cost"]
    assert cost["one_no_scrape"]["updates"] > 0 and cost["every_no_scrape"]["updates"] > 0
    assert cost["one_floor"]["events"] > 0 and cost["every_floor"]["events"] > 0
    assert "| Figure | Value | Target | Notes |" in markdown_path.read_text()


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 21)]
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.99) == 20.0
    assert math.isnan(percentile([], 0.5))


def test_profile_summary_shares_own_and_inclusive_time() -> None:
    collapsed = (
        "run (asyncio/runners.py:1);metrics (exporter/web.py:10);render (exporter/store.py:20) 3\n"
        "run (asyncio/runners.py:1);metrics (exporter/web.py:11);handle (exporter/lenses/sync.py:5) 1\n"
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 4
    assert summary["self"][0] == ["render (exporter/store.py)", 75.0]
    assert summary["inclusive"][0] == ["metrics (exporter/web.py)", 100.0]
    assert not any(frame.startswith("run (asyncio/") for frame, _ in summary["inclusive"])
