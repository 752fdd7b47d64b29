"""CRC-32 of a concatenation from the CRC-32s of its parts, so a gzip trailer costs no pass over the bytes.

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
