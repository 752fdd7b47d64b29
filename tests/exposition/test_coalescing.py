"""Work that follows what changed since the last pass: updates only mark pieces, a scrape joins them, a pass
ahead of the next gzip scrape deflates them. Every scrape stays exactly a plain render of what is held."""

from __future__ import annotations

import gzip
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition import compaction
from exporter.exposition.compaction import (
    FOLLOW_DELAY,
    FOLLOW_FOR,
    IDLE_DELAY,
    MAX_INTERVAL,
    MIN_LEAD,
    Compactor,
    cadence,
    next_pass,
)
from exporter.exposition.deflate import Deflater
from exporter.exposition.store import Store
from tests.exposition.store_helpers import compact, render, render_gzip
from tests.exposition.test_store import GROUP, Thing, put

UPDATES = st.lists(
    st.tuples(st.integers(0, 300), st.one_of(st.none(), st.integers(-3, 3)), st.integers(0, 3)),
    min_size=1,
    max_size=400,
)


def plain(held: dict[str, Thing], suffix: bytes, openmetrics: bool) -> bytes:
    """A store built from scratch out of `held`, rendered at once."""
    expected = Store([GROUP])
    for thing in held.values():
        put(expected, "a", thing)
    return render(expected, suffix, openmetrics)


@settings(max_examples=60, deadline=None)
@given(UPDATES, st.booleans(), st.booleans())
def test_a_scrape_after_many_coalesced_updates_equals_a_plain_render(
    updates: list[tuple[int, int | None, int]], compacted_first: bool, openmetrics: bool
) -> None:
    """Many updates with no pass between them (as between two scrapes): the next scrape, text and gzip, in
    either format, is the plain render of the objects held, whether the store had been compacted before."""
    store = Store([GROUP])
    held: dict[str, Thing] = {}
    for number in range(200):
        held[f"thing-{number}"] = Thing(f"thing-{number}", "prod", number, ("x",))
        put(store, "a", held[f"thing-{number}"])
    if compacted_first:
        compact(store)
    for number, size, tags in updates:
        name = f"thing-{number}"
        if size is None and tags == 0:
            held.pop(name, None)
            store.delete(GROUP, "a", name)
        else:
            held[name] = Thing(name, "dev" if tags % 2 else "prod", size, ("y",) * tags)
            put(store, "a", held[name])
    suffix = b"# EOF\n" if openmetrics else b"own 1\n"
    text = render(store, suffix, openmetrics)
    assert sorted(text.splitlines()) == sorted(plain(held, suffix, openmetrics).splitlines())
    assert gzip.decompress(render_gzip(store, suffix, openmetrics)) == text
    compact(store)
    assert store.pending() == 0
    assert render(store, suffix, openmetrics) == text
    body = render_gzip(store, suffix, openmetrics)
    single = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert single.decompress(body) + single.flush() == text and single.unused_data == b""


def test_updates_only_mark_pieces_and_the_next_scrape_joins_them() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    compact(store)
    deflated = render_gzip(store)
    for value in range(2, 50):
        put(store, "a", Thing("one", "prod", value, ("x",)))
    assert store.pending() == 1  # fifty updates, one piece waiting
    assert b"thing_size{" in render(store) and b"} 49\n" in render(store)
    assert gzip.decompress(render_gzip(store)) == render(store)
    assert gzip.decompress(deflated) != render(store)


@given(st.lists(st.binary(max_size=3000), max_size=20), st.randoms())
def test_deflated_segments_concatenate_in_any_order(pieces: list[bytes], rng: random.Random) -> None:
    deflater = Deflater()
    segments = [(piece, deflater.segment(piece)) for piece in pieces]
    rng.shuffle(segments)
    stream = b"".join(segment for _, segment in segments) + b"\x03\x00"
    assert zlib.decompressobj(-15).decompress(stream) == b"".join(piece for piece, _ in segments)


def test_a_pass_is_due_ahead_of_a_regular_gzip_scrape() -> None:
    # A scraper every 15 s, last seen at 100: the next pass starts before 115, earlier by the lead and
    # twice the last pass's duration.
    assert next_pass(101.0, 100.5, (85.0, 100.0), 0.5) == 115.0 - MIN_LEAD - 1.0
    # A late scrape is still expected until two intervals have gone by: the pass is due at once.
    assert next_pass(120.0, 116.0, (85.0, 100.0), 0.5) < 120.0


def test_a_scraper_on_a_schedule_has_a_cadence_and_one_off_schedule_has_none() -> None:
    assert cadence((70.0, 85.0, 100.01)) == pytest.approx(15.01)  # Prometheus: the schedule to the ms
    assert cadence((85.0, 100.0)) == 15.0  # one interval known so far
    assert cadence((0.0, 9.0, 30.0)) is None  # someone scraping by hand, a script, two scrapers
    assert cadence((0.0, 300.0, 315.0)) == 15.0  # a Prometheus that has just started, after a gap
    assert cadence((0.0, 700.0)) is None  # further apart than MAX_INTERVAL
    assert cadence((5.0,)) is None


def test_gzip_scrapes_at_no_cadence_are_followed_by_a_pass_soon_after_every_change() -> None:
    # Scrapes 9 s then 21 s apart: the next could come at any moment, so changes are deflated as they come
    # rather than ahead of a scrape guessed from the last interval (the 51 s it would give).
    assert next_pass(31.0, 30.5, (0.0, 9.0, 30.0), 0.5) == 30.5 + FOLLOW_DELAY
    assert next_pass(70.0, 69.0, (0.0, 9.0, 30.0), 0.5) == 69.0 + FOLLOW_DELAY
    # Two of its last intervals after its last scrape, that scraper is not followed any more; nor after
    # FOLLOW_FOR, however long its intervals.
    assert next_pass(73.0, 72.5, (0.0, 9.0, 30.0), 0.5) == 72.5 + IDLE_DELAY
    assert next_pass(90.0 + FOLLOW_FOR + 1.0, 150.0, (0.0, 40.0, 90.0), 0.5) == 150.0 + IDLE_DELAY


def test_a_scraper_faster_than_a_pass_keeps_passes_going() -> None:
    # Gzip scrapes every 0.2 s and a pass that took 0.6 s: the scraper is still there, the next pass is due.
    assert next_pass(0.9, 0.85, (0.0, 0.2), 0.6) <= 0.9
    assert next_pass(4.0, 3.9, (0.0, 0.2), 0.6) <= 4.0


def test_a_gzip_scrape_with_no_known_cadence_is_followed_by_a_pass_at_once() -> None:
    # The first gzip scrape came while changes waited: they went uncompressed, so the pass is due now.
    assert next_pass(10.0, 9.0, (9.5,), 0.0) <= 10.0
    assert next_pass(901.0, 850.0, (100.0, 900.0), 0.0) <= 901.0  # back after longer than MAX_INTERVAL


def test_with_no_regular_gzip_scraper_changes_gather_for_the_idle_delay() -> None:
    assert next_pass(10.0, 9.0, (), 0.0) == 9.0 + IDLE_DELAY
    assert next_pass(10.0, 9.0, (5.0,), 0.0) == 9.0 + IDLE_DELAY
    assert next_pass(200.0, 199.0, (85.0, 100.0), 0.0) == 199.0 + IDLE_DELAY  # the scraper went away
    assert next_pass(700.0, 699.0, (0.0, MAX_INTERVAL + 1.0), 0.0) == 699.0 + IDLE_DELAY


def test_a_body_is_the_state_at_its_start_whatever_changes_while_it_is_written() -> None:
    store = Store([GROUP])
    for number in range(50):
        put(store, "a", Thing(f"thing-{number}", "prod", number, ("x",)))
    before = render(store)
    text, compressed = store.parts(), store.gzip_parts()
    for number in range(50):
        put(store, "a", Thing(f"thing-{number}", "dev", -number, ()))
    store.delete(GROUP, "a", "thing-7")
    compact(store)
    assert b"".join(text.batches(100)) == before and text.length == len(before)
    assert gzip.decompress(b"".join(compressed.batches(100))) == before


@given(st.integers(1, 5000))
def test_slices_join_to_the_whole_body_and_each_is_at_least_the_size_asked(size: int) -> None:
    store = Store([GROUP])
    for number in range(100):
        put(store, "a", Thing(f"thing-{number}", "prod", number, ("x",) * (number % 3)))
    body = store.parts(b"own 1\n")
    slices = list(body.batches(size))
    assert b"".join(slices) == render(store, b"own 1\n") and body.length == sum(map(len, slices))
    assert all(len(piece) >= size for piece in slices[:-1])


async def test_a_pass_with_a_large_backlog_does_not_wait_for_scrapes_being_written() -> None:
    store = Store([GROUP])
    compactor = Compactor(store)
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    with pytest.MonkeyPatch.context() as patch, store.serving():
        patch.setattr(compaction, "CATCH_UP", 1)  # two pieces wait: a backlog
        await compactor._scrapes_written()
        assert compactor._paused_since is None, "the pass waited for the scrape"
        patch.setattr(compaction, "CATCH_UP", 2)  # no backlog: it waits (at most MAX_PAUSE)
        await compactor._scrapes_written()
        assert compactor._paused_since is not None
