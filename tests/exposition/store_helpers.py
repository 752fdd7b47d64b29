"""What tests read off a store that the product never needs: its keys, whole bodies, full compaction."""

from __future__ import annotations

import sys
from typing import Any

from exporter.exposition.families import FamilyGroup
from exporter.exposition.store import Store


def keys(store: Store, group: FamilyGroup[Any], target: str) -> set[str]:
    """The object keys a target holds now."""
    return set(store._pieces(group).targets.get(target, set()))


def count(store: Store, group: FamilyGroup[Any], target: str) -> int:
    """How many objects a target holds now."""
    return len(store._pieces(group).targets.get(target, set()))


def render(store: Store, suffix: bytes = b"", openmetrics: bool = False) -> bytes:
    """The text exposition as one bytes object."""
    return b"".join(store.parts(suffix, openmetrics).batches(sys.maxsize))


def render_gzip(store: Store, suffix: bytes = b"", openmetrics: bool = False) -> bytes:
    """The gzip exposition as one bytes object."""
    return b"".join(store.gzip_parts(suffix, openmetrics).batches(sys.maxsize))


def compact(store: Store) -> None:
    """Bring every piece up to date, deflating included, in this thread."""
    store.join_changed()
    store.deflate(sys.maxsize)
    for _ in store.prepare_gzip():
        pass
