"""The per-object series store: each object's series are rendered once, when it changes; a scrape joins bytes.

Families are declared as data (name, help, label names, a reader). An object (an environment, an agent) is
rendered into one chunk of sample lines per family. The store keeps those chunks keyed by
(group, partition, object); a scrape writes each family's header followed by every object's chunk for that
family, so the series of a family stay contiguous as the text format requires, and an object that is gone
has no series left behind.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Sample = tuple[tuple[str, ...], float]
"""The values of a family's own labels, in declaration order, and the sample value."""

Rendered = tuple[bytes, ...]
"""One object's sample lines, one chunk per family of its group (empty bytes where it has none)."""


def escape_label_value(value: str) -> str:
    """Escape a label value for the text format (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def escape_help(text: str) -> str:
    """Escape HELP text (backslash and newline)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """Format a sample value the way Prometheus' own Go exporters do."""
    if type(value) is int:
        return str(value)
    number = float(value)
    if number.is_integer():
        return str(int(number)) if abs(number) < 2**53 else repr(number)
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


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
        """Render every family's sample lines for one object (on the hot path of every update)."""
        common = ",".join(
            [
                f'{name}="{escape_label_value(value)}"'
                for name, value in zip(self.common_labels, common_values, strict=True)
            ]
        )
        separator = "," if common else ""
        chunks: list[bytes] = []
        for family in self.families:
            prefix = family.name + "{" + common
            lines: list[str] = []
            for label_values, value in family.read(obj):
                if label_values:
                    own = ",".join(
                        [
                            f'{name}="{escape_label_value(value_)}"'
                            for name, value_ in zip(family.labels, label_values, strict=True)
                        ]
                    )
                    lines.append(f"{prefix}{separator}{own}}} {format_value(value)}\n")
                else:
                    lines.append(f"{prefix}}} {format_value(value)}\n")
            chunks.append("".join(lines).encode("utf-8", "replace") if lines else b"")
        return tuple(chunks)


CELLS = 512
"""Objects of a group are spread over this many cells by a hash of their key. Each (family, cell) keeps its
joined text and its deflated text until an object of that cell changes that family, so a scrape re-joins
and re-compresses only what changed since the last one, whatever the size of the estate."""

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS
_DEFLATE_END = b"\x03\x00"  # a final, empty fixed-Huffman block


def deflate_segment(data: bytes) -> bytes:
    """Raw deflate of `data`, ended by a sync flush: byte-aligned and not final, so independently
    compressed segments concatenate into one valid deflate stream."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


class _Cell:
    """Some objects of a group, with each family's text and deflated text cached until it changes."""

    __slots__ = ("deflated", "objects", "text")

    def __init__(self, families: int) -> None:
        self.objects: dict[tuple[str, str], Rendered] = {}
        self.text: list[bytes | None] = [None] * families
        self.deflated: list[bytes | None] = [None] * families

    def family_text(self, position: int) -> bytes:
        text = self.text[position]
        if text is None:
            text = b"".join([rendered[position] for rendered in self.objects.values()])
            self.text[position] = text
        return text

    def family_deflated(self, position: int) -> bytes:
        deflated = self.deflated[position]
        if deflated is None:
            text = self.family_text(position)
            deflated = deflate_segment(text) if text else b""
            self.deflated[position] = deflated
        return deflated

    def changed(self, position: int) -> None:
        self.text[position] = None
        self.deflated[position] = None


class _GroupState:
    def __init__(self, group: FamilyGroup[Any]) -> None:
        self.group = group
        self.headers = [family.header() for family in group.families]
        self.deflated_headers = [deflate_segment(header) for header in self.headers]
        self.cells = [_Cell(len(group.families)) for _ in range(CELLS)]
        self.partitions: dict[str, set[str]] = {}

    def cell(self, partition: str, key: str) -> _Cell:
        return self.cells[zlib.crc32(f"{partition}\0{key}".encode("utf-8", "surrogatepass")) % CELLS]

    def put(self, partition: str, key: str, rendered: Rendered) -> None:
        cell = self.cell(partition, key)
        old = cell.objects.get((partition, key))
        cell.objects[(partition, key)] = rendered
        self.partitions.setdefault(partition, set()).add(key)
        for position, chunk in enumerate(rendered):
            if old is None or old[position] != chunk:
                cell.changed(position)

    def delete(self, partition: str, key: str) -> None:
        cell = self.cell(partition, key)
        old = cell.objects.pop((partition, key), None)
        self.partitions.get(partition, set()).discard(key)
        if old is not None:
            for position, chunk in enumerate(old):
                if chunk:
                    cell.changed(position)


class Store:
    """Rendered series of every object, keyed by (group, partition, object key).

    A partition is one configured target: a full re-list replaces its whole key set, an update replaces
    one object, a delete removes one. Nothing here ever calls an upstream, and a scrape costs the bytes it
    returns plus the re-joining of the cells that changed since the previous scrape.
    """

    def __init__(self, groups: Sequence[FamilyGroup[Any]]) -> None:
        self._states = [_GroupState(group) for group in groups]
        self._by_group = {id(group): state for group, state in zip(groups, self._states, strict=True)}

    def _state(self, group: FamilyGroup[T]) -> _GroupState:
        return self._by_group[id(group)]

    def replace(self, group: FamilyGroup[T], partition: str, objects: dict[str, Rendered]) -> None:
        """Replace a partition's whole state (a complete listing): objects not in it lose their series."""
        self.retain(group, partition, objects.keys())
        state = self._state(group)
        for key, rendered in objects.items():
            state.put(partition, key, rendered)

    def retain(self, group: FamilyGroup[T], partition: str, keys: Collection[str]) -> None:
        """Remove every object of a partition whose key is not in `keys`."""
        state = self._state(group)
        for key in state.partitions.get(partition, set()) - set(keys):
            state.delete(partition, key)

    def put(self, group: FamilyGroup[T], partition: str, key: str, rendered: Rendered) -> None:
        """Replace one object's series."""
        self._state(group).put(partition, key, rendered)

    def delete(self, group: FamilyGroup[T], partition: str, key: str) -> None:
        """Remove one object's series."""
        self._state(group).delete(partition, key)

    def keys(self, group: FamilyGroup[T], partition: str) -> set[str]:
        """The object keys a partition holds now."""
        return set(self._state(group).partitions.get(partition, set()))

    def count(self, group: FamilyGroup[T], partition: str) -> int:
        """How many objects a partition holds now."""
        return len(self._state(group).partitions.get(partition, set()))

    def parts(self, suffix: bytes = b"") -> list[bytes]:
        """The exposition as pieces to write in order: every family's header and samples (a family with no
        samples is left out), then `suffix`. Pieces are immutable, so later changes cannot tear a scrape."""
        out: list[bytes] = []
        for state in self._states:
            for position, header in enumerate(state.headers):
                texts = [text for cell in state.cells if (text := cell.family_text(position))]
                if texts:
                    out.append(header)
                    out.extend(texts)
        if suffix:
            out.append(suffix)
        return out

    def render(self, suffix: bytes = b"") -> bytes:
        """`parts(suffix)` joined."""
        return b"".join(self.parts(suffix))

    def gzip_parts(self, suffix: bytes = b"") -> list[bytes]:
        """`parts(suffix)` as the pieces of one gzip member, built from the cached deflated cells: only what
        changed since the last scrape is compressed again."""
        segments: list[bytes] = [_GZIP_HEADER]
        crc = 0
        size = 0
        for state in self._states:
            for position, header in enumerate(state.headers):
                texts: list[bytes] = []
                deflated: list[bytes] = []
                for cell in state.cells:
                    text = cell.family_text(position)
                    if text:
                        texts.append(text)
                        deflated.append(cell.family_deflated(position))
                if texts:
                    segments.append(state.deflated_headers[position])
                    segments.extend(deflated)
                    for text in (header, *texts):
                        crc = zlib.crc32(text, crc)
                        size += len(text)
        if suffix:
            segments.append(deflate_segment(suffix))
            crc = zlib.crc32(suffix, crc)
            size += len(suffix)
        segments.append(_DEFLATE_END)
        segments.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return segments

    def render_gzip(self, suffix: bytes = b"") -> bytes:
        """`gzip_parts(suffix)` joined."""
        return b"".join(self.gzip_parts(suffix))
