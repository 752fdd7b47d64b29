"""A scrape's body: the parts the store handed out when the scrape began, written in slices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


class Body:
    """A scrape's body as it stood when the scrape began: immutable parts, written in order."""

    __slots__ = ("length", "parts")

    def __init__(self, parts: Sequence[bytes]) -> None:
        self.parts = parts
        self.length = sum(map(len, parts))
        """Bytes in the whole body."""

    def batches(self, size: int) -> Iterator[bytes]:
        """Consecutive parts joined into slices of about `size` bytes."""
        batch: list[bytes] = []
        filled = 0
        for part in self.parts:
            batch.append(part)
            filled += len(part)
            if filled >= size:
                yield b"".join(batch)
                batch, filled = [], 0
        if batch:
            yield b"".join(batch)
