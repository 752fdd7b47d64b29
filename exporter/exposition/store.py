"""The per-object series store: each object's series are rendered once, when it changes; a scrape joins bytes.

Families are declared as data (name, help, label names, a reader). An object (an environment, an agent) is
rendered into one chunk of sample lines per family. The store keeps those chunks keyed by
(group, partition, object); a scrape writes each family's header followed by every object's chunk for that
family, so the series of a family stay contiguous as the text format requires, and an object that is gone
has no series left behind.

Objects are spread over cells; a cell keeps its objects' chunks as one list per family, and each (family,
cell) piece caches its joined text, its CRC-32 and its deflated text. A change marks pieces; `join_changed`
and `deflate` bring them up to date (in the background, see `exporter.exposition.compaction`), and a
scrape joins whatever is still marked before it writes, so it always serves the state as of its start. Gzip
is the cached deflated pieces, joined per family, as one member (a piece not yet deflated goes as stored
blocks), its CRC-32 combined from the pieces' checksums.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import struct
import sys
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from exporter.exposition.checksum import crc32_combine

T = TypeVar("T")

Sample = tuple[tuple[str, ...], float]
"""The values of a family's own labels, in declaration order, and the sample value."""

Rendered = tuple[bytes, ...]
"""One object's sample lines, one chunk per family of its group (empty bytes where it has none)."""


LABEL_ERRORS = "exporter.replacement-character"
"""How text UTF-8 cannot encode (a lone surrogate, e.g. from a non-UTF-8 environment variable) is rendered:
as U+FFFD, not `?`, so it never renders like a name that has a real `?` there. Upstream values are made
valid before they get here (`exporter.decode.as_label`), colliding names dropped by their source."""


def _replacement_character(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "\ufffd".encode() * (error.end - error.start), error.end


codecs.register_error(LABEL_ERRORS, _replacement_character)


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

    def header(self, openmetrics: bool = False) -> bytes:
        """The HELP and TYPE lines. A counter's `name` is its sample name (`..._total`), which the text
        format also uses as the family's name; OpenMetrics names the family without `_total`."""
        name = self.name
        if openmetrics and self.type == "counter":
            name = name.removesuffix("_total")
        return f"# HELP {name} {escape_help(self.help)}\n# TYPE {name} {self.type}\n".encode()


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
            chunks.append("".join(lines).encode("utf-8", LABEL_ERRORS) if lines else b"")
        return tuple(chunks)


CELLS = 128
"""Objects of a group are spread over this many cells by a hash of their key. Each (family, cell) piece keeps
its joined text, its deflated text and their CRC-32 until an object of that cell changes that family, so the
cost of bringing the exposition up to date follows what changed, whatever the size of the estate."""

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS
_DEFLATE_END = b"\x03\x00"  # a final, empty fixed-Huffman block
_STORED_MAX = 0xFFFF  # bytes in one stored block


def deflate_segment(data: bytes) -> bytes:
    """Raw deflate of `data`, ended by a sync flush: byte-aligned and not final, so independently
    compressed segments concatenate into one valid deflate stream (empty for empty data)."""
    if not data:
        return b""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def stored_segment(data: bytes) -> bytes:
    """`data` as non-final stored (uncompressed) deflate blocks: a valid segment at the cost of a copy."""
    blocks: list[bytes] = []
    for start in range(0, len(data), _STORED_MAX):
        block = data[start : start + _STORED_MAX]
        blocks.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF))
        blocks.append(block)
    return b"".join(blocks)


def _combine(crc1: int, length1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from both CRCs and lengths (an empty side needs no combining)."""
    if not length2:
        return crc1
    if not length1:
        return crc2
    return crc32_combine(crc1, crc2, length2)


class _ChecksumTree:
    """CRC-32 and length of a family's text, kept per cell and combined pairwise up a binary tree, so a
    changed cell costs log2(CELLS) combinations instead of a pass over the family's bytes."""

    __slots__ = ("crc", "length", "pending")

    def __init__(self) -> None:
        self.crc = [0] * (2 * CELLS)
        self.length = [0] * (2 * CELLS)
        self.pending: set[int] = set()

    def set(self, cell: int, crc: int, length: int) -> None:
        node = CELLS + cell
        self.crc[node] = crc
        self.length[node] = length
        self.pending.add(node >> 1)

    def root(self) -> tuple[int, int]:
        """The family's CRC-32 and length (parents of changed cells are recombined, one level at a time)."""
        crc, length, pending = self.crc, self.length, self.pending
        while pending:
            parents: set[int] = set()
            for node in pending:
                left, right = 2 * node, 2 * node + 1
                crc[node] = _combine(crc[left], length[left], crc[right], length[right])
                length[node] = length[left] + length[right]
                parents.add(node >> 1)
            parents.discard(0)
            pending = parents
        self.pending = pending
        return crc[1], length[1]


class _GroupState:
    """A group's objects by cell, and per family and cell the cached text, deflated text and checksum.

    A cell keeps its objects' chunks as one list per family (a column, indexed by the object's slot), so
    joining a piece is one `bytes.join` of a list that is already there."""

    def __init__(self, group: FamilyGroup[Any]) -> None:
        self.group = group
        # Per format (index 0: Prometheus text, 1: OpenMetrics), each family's header, deflated and CRC-32.
        self.headers = [[family.header(bool(om)) for family in group.families] for om in (0, 1)]
        self.deflated_headers = [[deflate_segment(header) for header in headers] for headers in self.headers]
        self.header_crcs = [[zlib.crc32(header) for header in headers] for headers in self.headers]
        families = len(group.families)
        self.slots: list[dict[tuple[str, str], int]] = [{} for _ in range(CELLS)]
        """Per cell, each object's slot in the cell's columns."""
        self.keys: list[list[tuple[str, str]]] = [[] for _ in range(CELLS)]
        """Per cell, the object in each slot."""
        self.columns: list[list[list[bytes]]] = [[[] for _ in range(families)] for _ in range(CELLS)]
        """Per cell and family, the objects' chunks by slot."""
        self.texts = [[b""] * CELLS for _ in range(families)]
        self.deflated = [[b""] * CELLS for _ in range(families)]
        self.bodies: list[bytes | None] = [b""] * families
        """Per family, its pieces' deflated forms joined; None once one of them changed."""
        self.checksums = [_ChecksumTree() for _ in range(families)]
        self.dirty: set[tuple[int, int]] = set()
        """(family position, cell) pieces whose objects changed since their text was joined."""
        self.stored: set[tuple[int, int]] = set()
        """Joined pieces not deflated yet: a gzip scrape sends them as stored blocks."""
        self.unchecked: set[tuple[int, int]] = set()
        """Joined pieces whose checksum and stored blocks are not made yet (a gzip scrape makes them)."""
        self.partitions: dict[str, set[str]] = {}

    def cell(self, partition: str, key: str) -> int:
        return zlib.crc32(f"{partition}\0{key}".encode("utf-8", "surrogatepass")) % CELLS

    def put(self, partition: str, key: str, rendered: Rendered) -> bool:
        index = self.cell(partition, key)
        slots, columns, dirty = self.slots[index], self.columns[index], self.dirty
        slot = slots.get((partition, key))
        changed = False
        if slot is None:
            slots[(partition, key)] = len(self.keys[index])
            self.keys[index].append((partition, key))
            self.partitions.setdefault(partition, set()).add(key)
            for position, (column, chunk) in enumerate(zip(columns, rendered, strict=True)):
                column.append(chunk)
                if chunk:
                    dirty.add((position, index))
                    changed = True
            return changed
        for position, (column, chunk) in enumerate(zip(columns, rendered, strict=True)):
            if column[slot] != chunk:
                column[slot] = chunk
                dirty.add((position, index))
                changed = True
        return changed

    def delete(self, partition: str, key: str) -> bool:
        index = self.cell(partition, key)
        slot = self.slots[index].pop((partition, key), None)
        self.partitions.get(partition, set()).discard(key)
        if slot is None:
            return False
        # The last slot's object moves into the freed one, so the columns stay dense.
        keys = self.keys[index]
        moved = keys.pop()
        if slot < len(keys):
            keys[slot] = moved
            self.slots[index][moved] = slot
        for position, column in enumerate(self.columns[index]):
            last = column.pop()
            if slot < len(column):
                gone, column[slot] = column[slot], last
            else:
                gone = last
            if gone:
                self.dirty.add((position, index))
        return True

    def join_changed(self, limit: int) -> int:
        """Join the text of up to `limit` changed pieces; how many were. Their checksum and deflated form
        wait for `deflate` (or for a gzip scrape, `check`)."""
        dirty = self.dirty
        done = 0
        while dirty and done < limit:
            piece = dirty.pop()
            position, index = piece
            self.texts[position][index] = b"".join(self.columns[index][position])
            self.stored.add(piece)
            self.unchecked.add(piece)
            done += 1
        return done

    def check(self) -> None:
        """Checksums, and stored blocks as their deflated form, for joined pieces not deflated yet."""
        for position, index in self.unchecked:
            text = self.texts[position][index]
            self.checksums[position].set(index, zlib.crc32(text), len(text))
            self.deflated[position][index] = stored_segment(text)
            self.bodies[position] = None
        self.unchecked.clear()

    def deflate(self, limit: int) -> int:
        """Deflate joined pieces not deflated yet, with their checksums, until about `limit` bytes of text
        are done (a piece is never split); how many bytes were."""
        done = 0
        while self.stored and done < limit:
            piece = self.stored.pop()
            self.unchecked.discard(piece)
            position, index = piece
            text = self.texts[position][index]
            self.deflated[position][index] = deflate_segment(text)
            self.checksums[position].set(index, zlib.crc32(text), len(text))
            self.bodies[position] = None
            done += len(text) or 1
        return done

    def body(self, position: int) -> bytes:
        """A family's deflated pieces as one segment, joined again only after one of them changed."""
        body = self.bodies[position]
        if body is None:
            body = self.bodies[position] = b"".join(self.deflated[position])
        return body


class Store:
    """Rendered series of every object, keyed by (group, partition, object key).

    A partition is one configured target: a full re-list replaces its whole key set, an update replaces
    one object, a delete removes one. Nothing here ever calls an upstream. Changes leave pieces to bring up
    to date (`on_change` says there is work): `join_changed`, `deflate` and `prepare_gzip` do it a
    slice at a time between scrapes, and a scrape joins whatever is left, so it
    always serves the state as of its start.
    """

    def __init__(self, groups: Sequence[FamilyGroup[Any]]) -> None:
        self._states = [_GroupState(group) for group in groups]
        self._by_group = {id(group): state for group, state in zip(groups, self._states, strict=True)}
        self.on_change: Callable[[], None] | None = None
        """Called when there is upkeep to do (set by whoever does it, `compaction.Compactor`)."""
        self.scrapes = 0
        """Scrapes being written now (`serving`)."""

    def _state(self, group: FamilyGroup[T]) -> _GroupState:
        return self._by_group[id(group)]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def replace(self, group: FamilyGroup[T], partition: str, objects: dict[str, Rendered]) -> None:
        """Replace a partition's whole state (a complete listing): objects not in it lose their series."""
        self.retain(group, partition, objects.keys())
        state = self._state(group)
        changed = False
        for key, rendered in objects.items():
            changed = state.put(partition, key, rendered) or changed
        if changed:
            self._changed()

    def retain(self, group: FamilyGroup[T], partition: str, keys: Collection[str]) -> None:
        """Remove every object of a partition whose key is not in `keys`."""
        state = self._state(group)
        changed = False
        for key in state.partitions.get(partition, set()) - set(keys):
            changed = state.delete(partition, key) or changed
        if changed:
            self._changed()

    def put(self, group: FamilyGroup[T], partition: str, key: str, rendered: Rendered) -> None:
        """Replace one object's series."""
        if self._state(group).put(partition, key, rendered):
            self._changed()

    def delete(self, group: FamilyGroup[T], partition: str, key: str) -> None:
        """Remove one object's series."""
        if self._state(group).delete(partition, key):
            self._changed()

    def keys(self, group: FamilyGroup[T], partition: str) -> set[str]:
        """The object keys a partition holds now."""
        return set(self._state(group).partitions.get(partition, set()))

    def count(self, group: FamilyGroup[T], partition: str) -> int:
        """How many objects a partition holds now."""
        return len(self._state(group).partitions.get(partition, set()))

    def pending(self) -> int:
        """How many (family, cell) pieces are left to bring up to date, deflating included."""
        return sum(len(state.dirty) + len(state.stored) for state in self._states)

    def join_changed(self, limit: int | None = None) -> bool:
        """Join the text of up to `limit` changed pieces (all without a limit), their checksums and deflating
        left for later; whether any changed piece remains."""
        budget = sys.maxsize if limit is None else limit
        for state in self._states:
            budget -= state.join_changed(budget)
        return any(state.dirty for state in self._states)

    def deflate(self, limit: int) -> bool:
        """Deflate joined pieces not deflated yet, with their checksums, until about `limit` bytes of text are
        done (a piece is never split); whether any piece is left to deflate."""
        budget = limit
        for state in self._states:
            budget -= state.deflate(budget)
            if budget <= 0:
                break
        return any(state.stored for state in self._states)

    def prepare_gzip(self) -> Iterator[None]:
        """Combine the checksum trees and join the deflated pieces of families whose pieces changed, pausing
        after each (a gzip scrape needs both; done between scrapes, it finds them ready)."""
        for state in self._states:
            for position, tree in enumerate(state.checksums):
                if tree.pending or state.bodies[position] is None:
                    tree.root()
                    state.body(position)
                    yield

    def compact(self) -> None:
        """Bring every piece up to date, deflating included, in this thread."""
        self.join_changed()
        self.deflate(sys.maxsize)
        for _ in self.prepare_gzip():
            pass

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around writing a scrape's body. Background deflating waits meanwhile: the scrape joined what it
        needed when it began, and its writes should not share the event loop with that work."""
        self.scrapes += 1
        try:
            yield
        finally:
            self.scrapes -= 1
            if not self.scrapes and self.pending():
                self._changed()

    def parts(self, suffix: bytes = b"", openmetrics: bool = False) -> list[bytes]:
        """The exposition as pieces to write in order: every family's header (as the format names it) and
        samples (a family with no samples is left out), then `suffix`. Pieces are immutable, so later changes
        cannot tear a scrape."""
        self.join_changed()
        out: list[bytes] = []
        for state in self._states:
            for header, texts in zip(state.headers[openmetrics], state.texts, strict=True):
                samples = list(filter(None, texts))
                if samples:
                    out.append(header)
                    out.extend(samples)
        if suffix:
            out.append(suffix)
        return out

    def render(self, suffix: bytes = b"", openmetrics: bool = False) -> bytes:
        """`parts(suffix, openmetrics)` joined."""
        return b"".join(self.parts(suffix, openmetrics))

    def gzip_parts(self, suffix: bytes = b"", openmetrics: bool = False) -> list[bytes]:
        """`parts(suffix)` as the pieces of one gzip member, from the cached deflated pieces; the trailer's
        CRC-32 is combined from the families' checksums, so no byte of the text is read again."""
        self.join_changed()
        for state in self._states:
            state.check()
        segments: list[bytes] = [_GZIP_HEADER]
        crc = 0
        size = 0
        for state in self._states:
            for position, header in enumerate(state.headers[openmetrics]):
                family_crc, family_size = state.checksums[position].root()
                if family_size:
                    segments.append(state.deflated_headers[openmetrics][position])
                    body = state.bodies[position]
                    # A family changed since its pieces were last joined goes piece by piece (the writer
                    # joins them anyway); joining them here too would copy them twice.
                    if body is None:
                        segments.extend(state.deflated[position])
                    else:
                        segments.append(body)
                    crc = _combine(crc, size, state.header_crcs[openmetrics][position], len(header))
                    size += len(header)
                    crc = _combine(crc, size, family_crc, family_size)
                    size += family_size
        if suffix:
            segments.append(deflate_segment(suffix))
            crc = _combine(crc, size, zlib.crc32(suffix), len(suffix))
            size += len(suffix)
        segments.append(_DEFLATE_END)
        segments.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
        return segments

    def render_gzip(self, suffix: bytes = b"", openmetrics: bool = False) -> bytes:
        """`gzip_parts(suffix, openmetrics)` joined."""
        return b"".join(self.gzip_parts(suffix, openmetrics))
