"""CRC-32 of a concatenation from the CRC-32s of its parts, so a gzip trailer costs no pass over the bytes.

`ChecksumTree` keeps a family's CRC-32 per cell and combines them up a binary tree.

zlib has `crc32_combine`, but Python's zlib module does not expose it; it is called from the zlib library
the interpreter already loads, and computed in Python (the same algorithm, about a hundred times slower)
where that library cannot be found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import zlib
from collections.abc import Callable

_POLYNOMIAL = 0xEDB88320  # CRC-32 (IEEE 802.3), reflected, as zlib computes it


def _multiply(a: int, b: int) -> int:
    """a * b modulo the CRC polynomial, both as reflected 32-bit polynomials."""
    mask = 1 << 31
    product = 0
    while True:
        if a & mask:
            product ^= b
            if a & (mask - 1) == 0:
                return product
        mask >>= 1
        b = (b >> 1) ^ _POLYNOMIAL if b & 1 else b >> 1


def _powers_of_x() -> list[int]:
    """x^(2^n) modulo the polynomial, for n in 0..31."""
    powers = [1 << 30]  # x^1
    for _ in range(31):
        powers.append(_multiply(powers[-1], powers[-1]))
    return powers


_X2N = _powers_of_x()


def crc32_combine_python(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from crc32(A), crc32(B) and len(B), as zlib 1.2.12+ computes it."""
    power = 1 << 31  # x^0
    exponent = length2
    bit = 3  # bytes are eight bits: x^(8 * length2)
    while exponent:
        if exponent & 1:
            power = _multiply(_X2N[bit & 31], power)
        exponent >>= 1
        bit += 1
    return _multiply(power, crc1) ^ crc2


def _zlib_combine() -> Callable[[int, int, int], int] | None:
    for name in ("libz.so.1", ctypes.util.find_library("z")):
        if not name:
            continue
        try:
            function = ctypes.CDLL(name).crc32_combine
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_ulong
        function.argtypes = (ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long)
        if function(zlib.crc32(b"abc"), zlib.crc32(b"def"), 3) == zlib.crc32(b"abcdef"):
            combine: Callable[[int, int, int], int] = function
            return combine
    return None


_native = _zlib_combine()

crc32_combine: Callable[[int, int, int], int] = _native or crc32_combine_python
"""CRC-32 of A+B from crc32(A), crc32(B) and len(B)."""

NATIVE = _native is not None
"""Whether `crc32_combine` is zlib's own."""


def combine(crc1: int, length1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from both CRCs and lengths (an empty side needs no combining)."""
    if not length2:
        return crc1
    if not length1:
        return crc2
    return crc32_combine(crc1, crc2, length2)


class ChecksumTree:
    """CRC-32 and length of a family's text, kept per cell and combined pairwise up a binary tree, so a
    changed cell costs log2(cells) combinations instead of a pass over the family's bytes."""

    __slots__ = ("cells", "crc", "length", "pending")

    def __init__(self, cells: int) -> None:
        self.cells = cells
        self.crc = [0] * (2 * cells)
        self.length = [0] * (2 * cells)
        self.pending: set[int] = set()

    def set(self, cell: int, crc: int, length: int) -> None:
        """A cell's new CRC-32 and length; its ancestors are recombined by the next `root`."""
        node = self.cells + cell
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
                crc[node] = combine(crc[left], length[left], crc[right], length[right])
                length[node] = length[left] + length[right]
                parents.add(node >> 1)
            parents.discard(0)
            pending = parents
        self.pending = pending
        return crc[1], length[1]
