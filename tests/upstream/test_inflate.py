"""Decompressing upstream bodies a bounded slice at a time."""

from __future__ import annotations

import gzip
import zlib

import pytest

from exporter.inflate import MAX_RATIO, RATIO_GRACE, SLICE, InflateError, Inflater

TEXT = b'{"items": [' + b'{"name": "environment"},' * 20_000 + b"{}]}"


def inflate(inflater: Inflater, body: bytes, chunk: int = 4096) -> list[bytes]:
    return [
        piece for start in range(0, len(body), chunk) for piece in inflater.feed(body[start : start + chunk])
    ]


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT, wbits=-zlib.MAX_WBITS)),  # raw deflate, as some servers send it
        ("", TEXT),
        ("Identity", TEXT),
    ],
)
def test_every_encoding_asked_for_comes_out_whole_in_bounded_slices(encoding: str, body: bytes) -> None:
    inflater = Inflater(encoding)
    pieces = inflate(inflater, body)
    assert b"".join(pieces) == TEXT
    assert max(len(piece) for piece in pieces) <= max(SLICE, 4096)
    assert (inflater.wire, inflater.inflated) == (len(body), len(TEXT))


def test_an_encoding_not_asked_for_is_refused() -> None:
    with pytest.raises(InflateError, match="unsupported content encoding 'br'") as raised:
        Inflater("br")
    assert raised.value.reason == "decode"


def test_a_body_that_is_not_what_it_says_is_a_decode_error() -> None:
    with pytest.raises(InflateError) as raised:
        inflate(Inflater("gzip"), b"not gzip at all" * 10)
    assert raised.value.reason == "decode"


def test_a_bomb_is_stopped_soon_after_the_grace() -> None:
    bomb = gzip.compress(b"\n" * (64 * 1024 * 1024), compresslevel=9)
    inflater = Inflater("gzip")
    with pytest.raises(InflateError) as raised:
        inflate(inflater, bomb, chunk=1024)
    assert raised.value.reason == "too_large"
    assert inflater.inflated <= max(RATIO_GRACE, MAX_RATIO * inflater.wire) + SLICE
