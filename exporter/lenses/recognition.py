"""Recognising environments whose raw text has not changed, so they are not decoded again: the stream's
snapshot arrives with the first listing and repeats it, a reconnect's snapshot and a re-list mostly repeat
what is held (what the stream changed since, HQ lists with the text its update carried). An item is
recognised by the length and hash of its exact text, compared with the text the environment held now was
decoded from (a listing's item or a stream event's data), in the order HQ sent them last (resynchronised by
name after a change): it costs a hash instead of a decode, and stands for the environment held."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from exporter.lenses.model import Environment

Fingerprint = tuple[int, int]
"""The length and hash of an item's text (the hash is keyed per process: not predictable from outside)."""

_AFTER_ITEM = frozenset(" \t\n\r,]")


@dataclass(frozen=True, slots=True)
class Recognised:
    """An item whose text is the one the environment held now was decoded from."""

    environment: Environment
    fingerprint: Fingerprint


@dataclass(frozen=True, slots=True)
class Fresh:
    """An item decoded from text not recognised, and that text's fingerprint."""

    raw: Any
    fingerprint: Fingerprint


class Recognition:
    """For one HQ: the fingerprint of the text each held environment was decoded from, and the order of the
    last listing or snapshot decoded whole."""

    def __init__(self, held: Callable[[str], Environment | None]) -> None:
        self.held = held
        self.prints: dict[str, Fingerprint] = {}
        self.order: list[str] = []
        """The names of the last listing or snapshot decoded whole, in the order HQ sent them."""
        self.positions: dict[str, int] = {}

    def start(self) -> RecognitionPass:
        """A listing or snapshot begins."""
        return RecognitionPass(self)

    def forget(self, name: str) -> None:
        """The environment held changed with no text to know it by (it was deleted or filtered out)."""
        self.prints.pop(name, None)

    def learned(self, name: str, text: str) -> None:
        """The environment held now was decoded from `text` (a stream event's): a listing or snapshot that
        repeats it is recognised."""
        self.prints[name] = (len(text), hash(text))

    def applied(
        self, current: Collection[str], seen: dict[str, Fingerprint], overridden: Collection[str]
    ) -> None:
        """A listing or snapshot was applied: each environment it brought is now known by its text, those a
        stream change overrode by the text that change came with, if any."""
        prints = {name: seen[name] for name in current if name in seen and name not in overridden}
        for name in overridden:
            if name in self.prints:
                prints[name] = self.prints[name]
        self.prints = prints


class RecognitionPass:
    """One listing or snapshot being decoded: recognises its items, and remembers each item's fingerprint."""

    def __init__(self, recognition: Recognition) -> None:
        self.recognition = recognition
        self.order = recognition.order
        self.positions = recognition.positions
        self.next = 0
        self.last: str | None = None  # the name of the item before the next
        self.seen: dict[str, Fingerprint] = {}
        self._sequence: list[str] = []

    def recognise(self, text: str, index: int) -> tuple[Recognised, int] | None:
        """The item at `index` and where it ends, when its text is the one the held environment it comes
        next after last time was decoded from."""
        if self.order is not self.recognition.order:  # another listing finished meanwhile: follow its order
            self.order, self.positions = self.recognition.order, self.recognition.positions
            self.next = self.positions.get(self.last, -1) + 1 if self.last is not None else 0
        if self.next >= len(self.order):
            return None
        name = self.order[self.next]
        expected = self.recognition.prints.get(name)
        if expected is None:
            return None
        length, digest = expected
        end = index + length
        if end >= len(text) or text[end] not in _AFTER_ITEM or hash(text[index:end]) != digest:
            return None
        environment = self.recognition.held(name)
        if environment is None:
            return None
        self.next, self.last = self.next + 1, name
        return Recognised(environment, expected), end

    def fresh(self, raw: Any, text: str) -> Fresh:
        """An item decoded from `text`; the next expected is the one HQ sent after it last time."""
        name = raw.get("name") if isinstance(raw, dict) else None
        position = self.positions.get(name) if isinstance(name, str) else None
        self.next = self.next + 1 if position is None else position + 1
        self.last = name if isinstance(name, str) else self.last
        return Fresh(raw, (len(text), hash(text)))

    def seen_as(self, name: str, fingerprint: Fingerprint) -> None:
        """The item of `fingerprint` became the environment `name`."""
        self.seen[name] = fingerprint
        self._sequence.append(name)

    def finish(self) -> None:
        """The whole listing or snapshot was decoded: the next one is expected in its order."""
        self.recognition.order = self._sequence
        self.recognition.positions = {name: index for index, name in enumerate(self._sequence)}
