"""CRC-32 combination: zlib's own function and the Python fallback agree with a pass over the bytes."""

from __future__ import annotations

import sys
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.exposition import checksum


@given(st.binary(max_size=300), st.binary(max_size=3000))
def test_combined_crc_equals_the_crc_of_the_concatenation(first: bytes, second: bytes) -> None:
    expected = zlib.crc32(first + second)
    crc1, crc2 = zlib.crc32(first), zlib.crc32(second)
    assert checksum.crc32_combine(crc1, crc2, len(second)) == expected
    assert checksum.crc32_combine_python(crc1, crc2, len(second)) == expected


def test_lengths_beyond_what_is_practical_to_hash_agree() -> None:
    for length in (1 << 20, (1 << 31) - 1, 1 << 33):
        assert checksum.crc32_combine_python(0x12345678, 0x9ABCDEF0, length) == (
            checksum.crc32_combine(0x12345678, 0x9ABCDEF0, length)
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libz.so.1 is looked for by its Linux name")
def test_zlibs_own_combination_is_found() -> None:
    assert checksum.NATIVE
