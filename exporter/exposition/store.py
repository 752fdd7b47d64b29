"""The per-object series store: each object's series are rendered once, when it changes; a scrape joins bytes.

The store keeps every object's rendered texts (one per family, `exporter.exposition.families`) keyed by
(group, target, object); a scrape writes each family's header followed by every object's text for that
family, so the series of a family stay contiguous as the text format requires, and an object that is gone
has no series left behind.

Objects are spread over cells by a hash of their key. A piece is one family's text of one cell's objects,
kept joined (the only copy of those texts; each object's part is found by its offsets), with its deflate
segment and CRC-32. A piece moves through these states:

    up to date ──(an object of its cell changes that family)──► waiting_for_join
    waiting_for_join ──(a pass or a scrape joins it)──► waiting_for_deflate + waiting_for_checksum
    waiting_for_checksum ──(a gzip scrape: CRC-32, stored blocks as its segment)──► waiting_for_deflate only
    waiting_for_deflate ──(a pass: CRC-32, deflated segment)──► up to date

A change in any state sends the piece back to waiting_for_join, holding the object's new text until the
join; an update does nothing else, however many come between two scrapes. The compactor
(`exporter.exposition.compaction`) joins and deflates in passes over everything changed since the last one,
timed by the gzip scrapes seen. A scrape joins what still waits (the next step a pass would take), so it
serves the state as of its start.
Gzip is the pieces' segments, joined per family, as one member whose CRC-32 is combined from the pieces'
checksums.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import sys
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar, cast

from exporter.exposition.body import Body
from exporter.exposition.checksum import ChecksumTree
from exporter.exposition.deflate import Deflater, GzipMember, deflate_segment, stored_segment
from exporter.exposition.families import Changes, FamilyGroup, Rendered

T = TypeVar("T")

CELLS = 128
"""Objects of a group are spread over this many cells by a hash of their key. Each piece keeps its deflated
segment and its CRC-32 until an object of its cell changes its family, so the cost of bringing the
exposition up to date follows what changed, whatever the size of the estate."""

Piece = tuple[int, int]
"""A family's position in its group and a cell."""

_NO_OFFSETS = array("q", [0])


class _GroupPieces:
    """A group's objects by cell, and per piece its joined text, deflate segment and checksum.

    A piece's text is the only copy of its objects' texts: each object's part of it is found by the
    piece's offsets (one per slot of its cell, as of its last join), and texts that changed since wait in
    the piece's `changes` (by slot) until the next join."""

    def __init__(self, group: FamilyGroup[Any]) -> None:
        self.group = group
        # Per format (index 0: Prometheus text, 1: OpenMetrics), each family's header, deflated and CRC-32.
        self.headers = [[family.header(bool(om)) for family in group.families] for om in (0, 1)]
        self.deflated_headers = [[deflate_segment(header) for header in headers] for headers in self.headers]
        self.header_crcs = [[zlib.crc32(header) for header in headers] for headers in self.headers]
        families = len(group.families)
        self.slots: list[dict[tuple[str, str], int]] = [{} for _ in range(CELLS)]
        """Per cell, each (target, key)'s slot."""
        self.objects: list[list[tuple[str, str]]] = [[] for _ in range(CELLS)]
        """Per cell, the (target, key) in each slot."""
        self.texts = [[b""] * CELLS for _ in range(families)]
        """Per family and cell, the piece's text as of its last join."""
        self.offsets = [[_NO_OFFSETS] * CELLS for _ in range(families)]
        """Per family and cell, where each slot's text begins in the piece's text, and where the last ends."""
        self.changes: list[list[dict[int, bytes] | None]] = [[None] * CELLS for _ in range(families)]
        """Per family and cell, the texts of slots changed since the last join."""
        self.segments = [[b""] * CELLS for _ in range(families)]
        """Per family and cell, the piece's deflate segment (deflated, or stored blocks)."""
        self.bodies: list[bytes | None] = [b""] * families
        """Per family, its pieces' segments joined; None once one of them changed."""
        self.checksums = [ChecksumTree(CELLS) for _ in range(families)]
        self.waiting_for_join: set[Piece] = set()
        self.waiting_for_deflate: set[Piece] = set()
        self.waiting_for_checksum: set[Piece] = set()
        self.targets: dict[str, set[str]] = {}
        """Per target, the keys of its objects."""

    def cell(self, target: str, key: str) -> int:
        return zlib.crc32(f"{target}\0{key}".encode("utf-8", "surrogatepass")) % CELLS

    def _text(self, position: int, index: int, slot: int) -> bytes:
        """One slot's text in one piece, as it is now."""
        changes = self.changes[position][index]
        if changes is not None and slot in changes:
            return changes[slot]
        offsets = self.offsets[position][index]
        if slot + 1 < len(offsets):
            return self.texts[position][index][offsets[slot] : offsets[slot + 1]]
        return b""

    def _set(self, position: int, index: int, slot: int, text: bytes) -> None:
        changes = self.changes[position][index]
        if changes is None:
            changes = self.changes[position][index] = {}
            self.waiting_for_join.add((position, index))
        changes[slot] = text

    def put(self, target: str, key: str, rendered: Changes) -> bool:
        index = self.cell(target, key)
        slot = self.slots[index].get((target, key))
        changed = False
        if slot is None:
            if None in rendered:
                raise ValueError(f"{key!r} is not held: every family's text is needed")
            slot = self.slots[index][(target, key)] = len(self.objects[index])
            self.objects[index].append((target, key))
            self.targets.setdefault(target, set()).add(key)
            for position, first in enumerate(cast(Rendered, rendered)):
                # A slot freed by a deletion may still have a text in the piece as last joined.
                if first or self._text(position, index, slot):
                    self._set(position, index, slot, first)
                    changed = True
            return changed
        for position, text in enumerate(rendered):
            if text is None:
                continue
            changes = self.changes[position][index]
            if changes is not None and slot in changes:
                if changes[slot] == text:
                    continue
            else:
                offsets = self.offsets[position][index]
                if slot + 1 < len(offsets):
                    start, end = offsets[slot], offsets[slot + 1]
                    if end - start == len(text) and self.texts[position][index].startswith(text, start):
                        continue
                elif not text:
                    continue
            self._set(position, index, slot, text)
            changed = True
        return changed

    def delete(self, target: str, key: str) -> bool:
        index = self.cell(target, key)
        slot = self.slots[index].pop((target, key), None)
        self.targets.get(target, set()).discard(key)
        if slot is None:
            return False
        # The last slot's object moves into the freed one, so the slots stay dense.
        objects = self.objects[index]
        moved = objects.pop()
        last = len(objects)
        if slot < last:
            objects[slot] = moved
            self.slots[index][moved] = slot
        for position in range(len(self.texts)):
            gone = self._text(position, index, slot)
            moved_text = self._text(position, index, last) if slot < last else b""
            if gone or moved_text:  # the piece lost a text, or its texts changed places
                self._set(position, index, slot, moved_text)
            changes = self.changes[position][index]
            if changes is not None:
                changes.pop(last, None)
        return True

    def join_changed(self, limit: int) -> int:
        """Join the text of up to `limit` pieces waiting for it; how many were. A piece's unchanged runs and
        changed texts are joined in one call and its offsets rebuilt from its slots' lengths, so only the
        changed slots cost a step in Python."""
        waiting = self.waiting_for_join
        done = 0
        while waiting and done < limit:
            piece = waiting.pop()
            position, index = piece
            count = len(self.objects[index])
            offsets = self.offsets[position][index]
            lengths = array("q", map(operator.sub, offsets[1 : count + 1], offsets[:count]))
            if len(lengths) < count:  # slots added since the last join: their texts, if any, are changes
                lengths.extend(itertools.repeat(0, count - len(lengths)))
            for slot, text in (self.changes[position][index] or {}).items():
                if slot < count:
                    lengths[slot] = len(text)
            self.texts[position][index] = b"".join(self._runs(position, index))
            self.offsets[position][index] = array("q", itertools.accumulate(lengths, initial=0))
            self.changes[position][index] = None
            self.waiting_for_deflate.add(piece)
            self.waiting_for_checksum.add(piece)
            done += 1
        return done

    def _runs(self, position: int, index: int) -> list[bytes | memoryview]:
        """A piece's text as it is now, in parts: the joined text when nothing waits, else views of the runs
        of unchanged slots in it and the changed slots' texts, in slot order."""
        text = self.texts[position][index]
        changes = self.changes[position][index]
        if changes is None:
            return [text] if text else []
        offsets = self.offsets[position][index]
        count = len(self.objects[index])
        known = min(count, len(offsets) - 1)  # slots that have their place in the joined text
        view = memoryview(text)
        out: list[bytes | memoryview] = []
        run = 0  # the first slot of the unchanged run not written yet
        for slot in sorted(changes):
            if slot >= count:
                continue
            end = min(slot, known)
            if run < end and offsets[run] < offsets[end]:
                out.append(view[offsets[run] : offsets[end]])
            if changes[slot]:
                out.append(changes[slot])
            run = slot + 1
        if run < known and offsets[run] < offsets[known]:
            out.append(view[offsets[run] : offsets[known]])
        return out

    def checksum(self) -> None:
        """Checksums, and stored blocks as their segment, of pieces waiting for them (for a gzip scrape)."""
        for position, index in self.waiting_for_checksum:
            text = self.texts[position][index]
            self.checksums[position].set(index, zlib.crc32(text), len(text))
            self.segments[position][index] = stored_segment(text)
            self.bodies[position] = None
        self.waiting_for_checksum.clear()

    def deflate(self, deflater: Deflater, limit: int) -> int:
        """Deflate pieces waiting for it, with their checksums, until about `limit` bytes of text are done
        (a piece is never split); how many bytes were."""
        done = 0
        while self.waiting_for_deflate and done < limit:
            piece = self.waiting_for_deflate.pop()
            self.waiting_for_checksum.discard(piece)
            position, index = piece
            text = self.texts[position][index]
            self.segments[position][index] = deflater.segment(text)
            self.checksums[position].set(index, zlib.crc32(text), len(text))
            self.bodies[position] = None
            done += len(text) or 1
        return done

    def body(self, position: int) -> bytes:
        """A family's segments as one, joined again only after one of them changed."""
        body = self.bodies[position]
        if body is None:
            body = self.bodies[position] = b"".join(self.segments[position])
        return body


class Store:
    """Rendered series of every object, keyed by (group, target, object key).

    A target is one configured upstream: a full re-list replaces its whole key set, an update replaces
    one object, a delete removes one. Nothing here ever calls an upstream. Changes leave pieces waiting
    (`on_change` says so): `deflate` and `prepare_gzip` bring them up to date a slice at a time between
    scrapes, and a scrape takes whatever still waits as it is, so it always serves the state as of its
    start.
    """

    def __init__(self, groups: Sequence[FamilyGroup[Any]]) -> None:
        self._groups = [_GroupPieces(group) for group in groups]
        self._by_group = {id(group): pieces for group, pieces in zip(groups, self._groups, strict=True)}
        self.on_change: Callable[[], None] | None = None
        """Called when there is upkeep to do (set by whoever does it, `compaction.Compactor`)."""
        self.scrapes = 0
        """Scrapes being written now (`serving`)."""
        self.gzip_scrapes: deque[float] = deque(maxlen=3)
        """When the last three gzip scrapes began (monotonic seconds): the compactor times its passes by
        them."""
        self._deflater = Deflater()

    def _pieces(self, group: FamilyGroup[T]) -> _GroupPieces:
        return self._by_group[id(group)]

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def replace(self, group: FamilyGroup[T], target: str, objects: dict[str, Rendered]) -> None:
        """Replace a target's whole state (a complete listing): objects not in it lose their series."""
        self.retain(group, target, objects.keys())
        pieces = self._pieces(group)
        changed = False
        for key, rendered in objects.items():
            changed = pieces.put(target, key, rendered) or changed
        if changed:
            self._changed()

    def retain(self, group: FamilyGroup[T], target: str, keys: Collection[str]) -> None:
        """Remove every object of a target whose key is not in `keys`."""
        pieces = self._pieces(group)
        changed = False
        for key in pieces.targets.get(target, set()) - set(keys):
            changed = pieces.delete(target, key) or changed
        if changed:
            self._changed()

    def put(self, group: FamilyGroup[T], target: str, key: str, rendered: Changes) -> None:
        """Replace one object's series; a family's None keeps the text held for it (the object must be
        held then)."""
        if self._pieces(group).put(target, key, rendered):
            self._changed()

    def delete(self, group: FamilyGroup[T], target: str, key: str) -> None:
        """Remove one object's series."""
        if self._pieces(group).delete(target, key):
            self._changed()

    def pending(self) -> int:
        """How many pieces wait to be joined or deflated."""
        return sum(len(pieces.waiting_for_join) + len(pieces.waiting_for_deflate) for pieces in self._groups)

    def join_changed(self, limit: int | None = None) -> bool:
        """Join the text of up to `limit` pieces waiting for it (all without a limit); whether any still
        waits."""
        budget = sys.maxsize if limit is None else limit
        for pieces in self._groups:
            budget -= pieces.join_changed(budget)
        return any(pieces.waiting_for_join for pieces in self._groups)

    def deflate(self, limit: int) -> bool:
        """Deflate pieces waiting for it, with their checksums, until about `limit` bytes of text are done
        (a piece is never split); whether any piece still waits."""
        budget = limit
        for pieces in self._groups:
            budget -= pieces.deflate(self._deflater, budget)
            if budget <= 0:
                break
        return any(pieces.waiting_for_deflate for pieces in self._groups)

    def prepare_gzip(self) -> Iterator[None]:
        """Combine the checksum trees and join the segments of families whose pieces changed, pausing
        after each (a gzip scrape needs both; done between scrapes, it finds them ready)."""
        for pieces in self._groups:
            for position, tree in enumerate(pieces.checksums):
                if tree.pending or pieces.bodies[position] is None:
                    tree.root()
                    pieces.body(position)
                    yield

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around writing a scrape's body. Background deflating waits meanwhile: the scrape took what it
        needed when it began, and its writes should not share the event loop with that work."""
        self.scrapes += 1
        try:
            yield
        finally:
            self.scrapes -= 1
            if not self.scrapes and self.pending():
                self._changed()

    def parts(self, suffix: bytes = b"", openmetrics: bool = False) -> Body:
        """The exposition: every family's header (as the format names it) and samples (a family with no
        samples is left out), then `suffix`. Texts are immutable, so later changes cannot tear a scrape.
        Pieces waiting for their join are joined first (the work a pass would do next)."""
        self.join_changed()
        parts: list[bytes] = []
        for pieces in self._groups:
            for header, texts in zip(pieces.headers[openmetrics], pieces.texts, strict=True):
                samples = list(filter(None, texts))
                if samples:
                    parts.append(header)
                    parts.extend(samples)
        if suffix:
            parts.append(suffix)
        return Body(parts)

    def gzip_parts(self, suffix: bytes = b"", openmetrics: bool = False) -> Body:
        """`parts(suffix)` as one gzip member, from the pieces' segments; the trailer's CRC-32 is combined
        from the families' checksums, so no byte of the text is read again."""
        self.gzip_scrapes.append(time.monotonic())
        self.join_changed()
        for pieces in self._groups:
            pieces.checksum()
        member = GzipMember()
        for pieces in self._groups:
            for position, header in enumerate(pieces.headers[openmetrics]):
                family_crc, family_size = pieces.checksums[position].root()
                if family_size:
                    member.add(
                        [pieces.deflated_headers[openmetrics][position]],
                        pieces.header_crcs[openmetrics][position],
                        len(header),
                    )
                    body = pieces.bodies[position]
                    # A family changed since its segments were last joined goes piece by piece (the writer
                    # joins them anyway); joining them here too would copy them twice.
                    member.add(pieces.segments[position] if body is None else [body], family_crc, family_size)
        member.add_text(suffix)
        return Body(member.finish())
