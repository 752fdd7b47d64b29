"""The docs name only files and directories of the project that exist: a module moved or renamed without its
docs fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A project path as the docs write it (`exporter/web/tls.py`, `tests/faults/`), not the tail of another path
# (`/etc/lenses-hq-exporter/secrets`) or of a URL.
PROJECT_PATH = re.compile(r"(?<![\w/.-])((?:exporter|tests|alerts|dashboards|deploy|bench)/[\w./-]*[\w/])")

GENERATED = ("bench/results/",)
"""Where runs write their output (ignored by git): the docs name files there that a checkout lacks."""


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "deploy").rglob("*.md")),
    ]


def test_every_path_the_docs_name_exists() -> None:
    missing = [
        f"{document.relative_to(ROOT)}: {path}"
        for document in documents()
        for path in PROJECT_PATH.findall(document.read_text(encoding="utf-8"))
        if not (ROOT / path).exists() and not path.startswith(GENERATED)
    ]
    assert not missing, missing
