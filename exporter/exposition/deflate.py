"""Deflate segments that concatenate, and one gzip member assembled from them.

A segment is raw deflate data ended on a byte boundary and not final, so segments compressed apart (or
written as stored, uncompressed blocks) join into one valid deflate stream. A gzip member is its header,
segments, a final empty block, and a trailer whose CRC-32 is combined from the parts' checksums
(`exporter.exposition.checksum`), so no byte of the text is read again.
"""

from __future__ import annotations

import struct
import zlib

from exporter.exposition.checksum import combine

LEVEL = 1
"""zlib compression level of every segment."""

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime, unknown OS
_DEFLATE_END = b"\x03\x00"  # a final, empty fixed-Huffman block
_STORED_MAX = 0xFFFF  # bytes in one stored block


class Deflater:
    """Raw deflate segments from one long-lived compressor: a full flush ends each segment on a byte
    boundary, not final, with no reference to earlier data, so segments compressed apart concatenate into
    one valid deflate stream in any order, without the cost of a new compressor per segment."""

    __slots__ = ("_compressor",)

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)

    def segment(self, data: bytes) -> bytes:
        """`data` deflated as one independent segment (empty for empty data)."""
        if not data:
            return b""
        try:
            return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FULL_FLUSH)
        except BaseException:
            # Input half taken in would leak into the next segment: start from a fresh compressor.
            self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
            raise


def deflate_segment(data: bytes) -> bytes:
    """Raw deflate of `data`, ended by a sync flush: byte-aligned and not final, so independently
    compressed segments concatenate into one valid deflate stream (empty for empty data)."""
    if not data:
        return b""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def stored_segment(data: bytes) -> bytes:
    """`data` as non-final stored (uncompressed) deflate blocks: a valid segment at the cost of a copy."""
    blocks: list[bytes] = []
    for start in range(0, len(data), _STORED_MAX):
        block = data[start : start + _STORED_MAX]
        blocks.append(struct.pack("<BHH", 0, len(block), len(block) ^ 0xFFFF))
        blocks.append(block)
    return b"".join(blocks)


class GzipMember:
    """One gzip member built from segments whose text's CRC-32 and length are known."""

    __slots__ = ("crc", "segments", "size")

    def __init__(self) -> None:
        self.segments: list[bytes] = [_GZIP_HEADER]
        self.crc = 0
        self.size = 0

    def add(self, segments: list[bytes], crc: int, size: int) -> None:
        """Append segments that inflate to `size` bytes of text whose CRC-32 is `crc`."""
        self.segments.extend(segments)
        self.crc = combine(self.crc, self.size, crc, size)
        self.size += size

    def add_text(self, text: bytes) -> None:
        """Append text deflated here (for what is small and made per scrape)."""
        if text:
            self.add([deflate_segment(text)], zlib.crc32(text), len(text))

    def finish(self) -> list[bytes]:
        """The member's pieces in order, trailer included."""
        return [*self.segments, _DEFLATE_END, struct.pack("<II", self.crc, self.size & 0xFFFFFFFF)]
