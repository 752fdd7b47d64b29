"""Decompressing upstream bodies in bounded slices: a few compressed bytes can inflate to gigabytes, so
output comes out a slice at a time (the caller counts it against its caps and yields to the event loop in
between), and an inflation ratio beyond any real JSON or event stream's ends the body."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

SLICE = 64 * 1024
"""Most decompressed bytes produced by one step."""
MAX_RATIO = 200
"""Decompressed bytes per wire byte beyond which a body is a decompression bomb, not data (JSON listings and
event streams compress 5 to 30 times)."""
RATIO_GRACE = 1024 * 1024
"""Decompressed bytes allowed before the ratio is judged (a small body's header skews it)."""
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")


class InflateError(Exception):
    """The body cannot be decompressed or uses an encoding not asked for (`reason` "decode"), or inflates
    too far ("too_large")."""

    def __init__(self, message: str, reason: str = "decode") -> None:
        super().__init__(message)
        self.reason = reason


class Inflater:
    """Turns wire bytes of one `Content-Encoding` into decompressed slices of at most `slice_bytes`."""

    def __init__(self, content_encoding: str, slice_bytes: int = SLICE) -> None:
        encoding = content_encoding.strip().lower() or "identity"
        if encoding not in ENCODINGS:
            raise InflateError(f"unsupported content encoding {encoding[:40]!r}")
        self.encoding = encoding
        self.slice_bytes = slice_bytes
        self.wire = 0
        self.inflated = 0
        self._raw_deflate = False
        self._started = False
        self._decompressor: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._decompressor = zlib.decompressobj()

    @property
    def compressed(self) -> bool:
        """Whether the body is compressed at all (an identity body needs no slicing)."""
        return self._decompressor is not None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed slices of the next wire bytes."""
        self.wire += len(data)
        if self._decompressor is None:
            self.inflated += len(data)
            if data:
                yield data
            return
        pending = data
        while pending:
            piece = self._step(pending)
            pending = self._decompressor.unconsumed_tail
            if piece:
                self.inflated += len(piece)
                if self.inflated > RATIO_GRACE and self.inflated > MAX_RATIO * self.wire:
                    raise InflateError(f"inflates more than {MAX_RATIO} times", "too_large")
                yield piece
            elif pending and not self._decompressor.eof:
                continue
            else:
                break

    def _step(self, data: bytes) -> bytes:
        assert self._decompressor is not None
        try:
            piece = self._decompressor.decompress(data, self.slice_bytes)
        except zlib.error as error:
            if self.encoding == "deflate" and not self._started and not self._raw_deflate:
                # `deflate` is meant as zlib-wrapped, but servers send raw deflate too.
                self._raw_deflate = True
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._step(data)
            raise InflateError(f"cannot decompress the {self.encoding} body: {error}") from None
        self._started = True
        return piece
