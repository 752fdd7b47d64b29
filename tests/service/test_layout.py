"""The package layout holds: arrows point down only (the middle knows no wing, web knows no wing, the wings
never import each other, only the `demo` and `simulate` commands import the simulator), and no module
outgrows one reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"

FORBIDDEN = {
    "config": ("exporter.lenses", "exporter.confluent", "exporter.exposition", "exporter.web"),
    "exposition": ("exporter.lenses", "exporter.confluent", "exporter.web"),
    "web": ("exporter.lenses", "exporter.confluent"),
    "lenses": ("exporter.confluent", "exporter.web", "exporter.simulator"),
    "confluent": ("exporter.lenses", "exporter.web", "exporter.simulator"),
}
COMMANDS = ("cli.py", "arguments.py", "demo.py")
"""`demo` and `simulate` run the simulator; nothing else in the product may reach it."""
MAX_LINES = 400


def imported(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_what_stands_below_it(package: str) -> None:
    crossings = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name in sorted(imported(path))
        if name.startswith(FORBIDDEN[package])
        and any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert not crossings


def test_only_the_commands_that_run_it_import_the_simulator() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "simulator" not in path.parts and not (path.parent == PACKAGE and path.name in COMMANDS)
        if any(name.startswith("exporter.simulator") for name in imported(path))
    )
    assert importers == []


def test_no_module_outside_the_simulator_is_longer_than_one_reading() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if "simulator" not in path.parts
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
