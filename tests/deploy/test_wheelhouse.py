"""The wheelhouse for an image of another architecture (`make wheelhouse IMAGE_PLATFORM=linux/arm64`):
binary wheels of that architecture only, and every dependency the project needs, so that an offline
`pip install --no-index` on that platform resolves. No arm64 image is built or run here."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIP = ROOT / ".venv" / "bin" / "pip"
SCRIPT = ROOT / "make" / "wheelhouse.sh"
AARCH64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")


def wheelhouse(platform: str, output: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), str(PIP), platform, "3.11", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_an_arm64_wheelhouse_holds_arm64_wheels_of_every_dependency(tmp_path: Path) -> None:
    output = tmp_path / "wheelhouse-linux-arm64"
    result = wheelhouse("linux/arm64", output)
    assert result.returncode == 0, result.stderr
    wheels = sorted(output.glob("*.whl"))
    assert any(path.name.startswith("lenses_hq_exporter-") for path in wheels)
    for path in wheels:
        platform_tags = path.stem.split("-")[-1].split(".")
        assert platform_tags == ["any"] or all(tag.endswith("_aarch64") for tag in platform_tags), path.name
        zipfile.ZipFile(path).testzip()
    assert any("aarch64" in path.name for path in wheels), "the compiled dependencies are arm64 builds"
    platforms = [argument for tag in AARCH64_PLATFORMS for argument in ("--platform", tag)]
    resolved = subprocess.run(
        [
            str(PIP),
            "install",
            "--dry-run",
            "--no-index",
            f"--find-links={output}",
            "--only-binary=:all:",
            *platforms,
            "--python-version=3.11",
            "--implementation=cp",
            f"--target={tmp_path / 'target'}",
            "--isolated",
            "lenses-hq-exporter",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert "Would install" in resolved.stdout and "aiohttp" in resolved.stdout


def test_an_unknown_platform_is_refused(tmp_path: Path) -> None:
    result = wheelhouse("linux/s390x", tmp_path / "wheelhouse")
    assert result.returncode == 2
    assert "unsupported platform linux/s390x" in result.stderr
