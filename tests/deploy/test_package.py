"""The distribution as a user gets it: `python -m build` makes the sdist and the wheel, `twine check` passes,
and the wheel installed into a fresh virtualenv runs `--version`, `mixin rules` and `demo`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from exporter import __version__
from tests.support import eventually, find, free_port, scrape

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def run(*command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; fail the test with its output when it fails."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def test_metadata_is_publishable() -> None:
    """SPDX license with its file, classifiers, project URLs and the README as the long description."""
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PROJECT["readme"] == "README.md"
    classifiers = PROJECT["classifiers"]
    assert "Topic :: System :: Monitoring" in classifiers
    assert not any(item.startswith("License ::") for item in classifiers)  # the SPDX field replaces them
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])


@pytest.fixture(scope="module")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The sdist and the wheel, built from this tree as a release is built."""
    output = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", output, ROOT)
    (sdist,) = output.glob("*.tar.gz")
    (wheel,) = output.glob("*.whl")
    yield sdist, wheel


@pytest.mark.slow
def test_build_and_twine_check(distributions: tuple[Path, Path]) -> None:
    sdist, wheel = distributions
    checked = run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    assert checked.stdout.count("PASSED") == 2, checked.stdout
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert "exporter/py.typed" in names
    assert not any(
        name.startswith(("tests/", "bench/", "alerts/", "dashboards/", "deploy/")) for name in names
    )


@pytest.fixture(scope="module")
def installed(distributions: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The console script of a fresh virtualenv holding only the wheel and its dependencies."""
    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True, clear=True)
    run(environment / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", distributions[1])
    return environment / "bin" / "lenses-hq-exporter"


@pytest.mark.slow
def test_installed_wheel_prints_its_version(installed: Path) -> None:
    assert run(installed, "--version").stdout.strip() == f"lenses-hq-exporter {__version__}"


@pytest.mark.slow
def test_installed_wheel_renders_the_rules_for_its_own_job(installed: Path, tmp_path: Path) -> None:
    run(
        installed,
        "mixin",
        "rules",
        "--job-selector",
        'job="kafka-monitoring"',
        "--set",
        "agent_disconnected_for=15m",
        "--runbook-url",
        "https://wiki.example.com/lenses-hq-exporter/runbook",
        "--output",
        tmp_path,
    )
    rules = yaml.safe_load((tmp_path / "lenses-hq-exporter.rules.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts and all('job="kafka-monitoring"' in rule["expr"] for rule in alerts)
    disconnected = [rule for rule in alerts if rule["alert"] == "LensesHQAgentDisconnected"]
    assert disconnected and all(rule["for"] == "15m" for rule in disconnected)
    assert all(
        rule["annotations"]["runbook_url"].startswith("https://wiki.example.com/lenses-hq-exporter/runbook#")
        for rule in alerts
    )


@pytest.mark.slow
def test_installed_wheel_says_which_extra_the_dashboards_need(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [installed, "mixin", "dashboards", "--output", tmp_path], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert "lenses-hq-exporter[dashboards]" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
async def test_installed_wheel_runs_the_demo(installed: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        installed,
        "demo",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(timeout=5) as client:

            async def serving() -> bool:
                if process.returncode is not None:
                    pytest.fail(f"demo exited {process.returncode}")
                try:
                    samples = await scrape(client, f"http://127.0.0.1:{port}/metrics")
                except httpx.HTTPError:
                    return False
                return bool(find(samples, "lenses_environment_info"))

            await eventually(serving, timeout=60, what="the installed demo's /metrics")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
