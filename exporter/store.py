"""The per-object series store: each object's series are rendered once, when it changes; a scrape joins bytes.

Families are declared as data (name, help, label names, a reader). An object (an environment, an agent) is
rendered into one chunk of sample lines per family. The store keeps those chunks keyed by
(group, partition, object); a scrape writes each family's header followed by every object's chunk for that
family, so the series of a family stay contiguous as the text format requires, and an object that is gone
has no series left behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Sample = tuple[tuple[str, ...], float]
"""The values of a family's own labels, in declaration order, and the sample value."""

Rendered = tuple[bytes, ...]
"""One object's sample lines, one chunk per family of its group (empty bytes where it has none)."""


def escape_label_value(value: str) -> str:
    """Escape a label value for the text format (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    """Escape HELP text (backslash and newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Format a sample value the way Prometheus' own Go exporters do."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True)
class Family(Generic[T]):
    """One metric family: its name, help, own label names, and how to read its samples off an object."""

    name: str
    help: str
    labels: tuple[str, ...]
    read: Callable[[T], Iterable[Sample]]
    type: str = "gauge"

    def header(self) -> bytes:
        """The HELP and TYPE lines, identical in the Prometheus text and OpenMetrics formats for gauges."""
        return f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.type}\n".encode()


@dataclass(frozen=True)
class FamilyGroup(Generic[T]):
    """The ordered families of one object kind, and the label names every one of its series carries."""

    common_labels: tuple[str, ...]
    families: tuple[Family[T], ...]

    def render(self, obj: T, common_values: Sequence[str]) -> Rendered:
        """Render every family's sample lines for one object.

        A reader that raises on malformed data loses only its own family's chunk for this object.
        """
        common = ",".join(
            f'{name}="{escape_label_value(value)}"'
            for name, value in zip(self.common_labels, common_values, strict=True)
        )
        chunks: list[bytes] = []
        for family in self.families:
            lines: list[str] = []
            for label_values, value in family.read(obj):
                own = ",".join(
                    f'{name}="{escape_label_value(value_)}"'
                    for name, value_ in zip(family.labels, label_values, strict=True)
                )
                labels = f"{common},{own}" if common and own else common or own
                lines.append(f"{family.name}{{{labels}}} {format_value(value)}\n")
            chunks.append("".join(lines).encode("utf-8", "replace"))
        return tuple(chunks)


@dataclass
class _Partition:
    objects: dict[str, Rendered] = field(default_factory=dict)


class Store:
    """Rendered series of every object, keyed by (group, partition, object key).

    A partition is one configured target: a full re-list replaces its whole key set, an update replaces
    one object, a delete removes one. Nothing here ever calls an upstream.
    """

    def __init__(self, groups: Sequence[FamilyGroup[Any]]) -> None:
        self._groups = tuple(groups)
        self._partitions: dict[int, dict[str, _Partition]] = {index: {} for index in range(len(groups))}
        self._index = {id(group): index for index, group in enumerate(groups)}
        self._cache: dict[int, bytes] = {}

    def _group_index(self, group: FamilyGroup[T]) -> int:
        return self._index[id(group)]

    def _partition(self, group: FamilyGroup[T], partition: str) -> _Partition:
        index = self._group_index(group)
        self._cache.pop(index, None)
        return self._partitions[index].setdefault(partition, _Partition())

    def replace(self, group: FamilyGroup[T], partition: str, objects: dict[str, Rendered]) -> None:
        """Replace a partition's whole state (a complete listing): objects not in it lose their series."""
        self._partition(group, partition).objects = dict(objects)

    def put(self, group: FamilyGroup[T], partition: str, key: str, rendered: Rendered) -> None:
        """Replace one object's series."""
        self._partition(group, partition).objects[key] = rendered

    def delete(self, group: FamilyGroup[T], partition: str, key: str) -> None:
        """Remove one object's series."""
        self._partition(group, partition).objects.pop(key, None)

    def keys(self, group: FamilyGroup[T], partition: str) -> set[str]:
        """The object keys a partition holds now."""
        part = self._partitions[self._group_index(group)].get(partition)
        return set(part.objects) if part else set()

    def count(self, group: FamilyGroup[T], partition: str) -> int:
        """How many objects a partition holds now."""
        part = self._partitions[self._group_index(group)].get(partition)
        return len(part.objects) if part else 0

    def render(self) -> bytes:
        """Every family's header and samples; a family with no samples is left out."""
        out: list[bytes] = []
        for index, group in enumerate(self._groups):
            cached = self._cache.get(index)
            if cached is None:
                cached = self._render_group(index, group)
                self._cache[index] = cached
            out.append(cached)
        return b"".join(out)

    def _render_group(self, index: int, group: FamilyGroup[Any]) -> bytes:
        objects = [
            rendered for part in self._partitions[index].values() for rendered in part.objects.values()
        ]
        out: list[bytes] = []
        for position, family in enumerate(group.families):
            body = b"".join([rendered[position] for rendered in objects])
            if body:
                out.append(family.header())
                out.append(body)
        return b"".join(out)
