"""Command line (being written)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lenses-hq-exporter`."""
    return 0
