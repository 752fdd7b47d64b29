"""The per-object store: contiguous families, exact replacement and deletion, gzip from cached cells."""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition import store as store_module
from exporter.exposition.families import Family, FamilyGroup, Sample, escape_label_value, format_value
from exporter.exposition.store import Store
from tests.exposition.store_helpers import compact, count, keys, render, render_gzip
from tests.support import parse_samples


@dataclass(frozen=True)
class Thing:
    name: str
    tier: str
    size: float | None
    tags: tuple[str, ...] = ()


def _size(thing: Thing) -> Iterable[Sample]:
    return () if thing.size is None else (((), thing.size),)


def _tags(thing: Thing) -> Iterable[Sample]:
    return (((tag,), 1) for tag in thing.tags)


GROUP: FamilyGroup[Thing] = FamilyGroup(
    ("thing", "tier"),
    (
        Family("thing_size", "Size.", (), _size),
        Family("thing_tag_info", "Tags.", ("tag",), _tags),
    ),
)


def put(store: Store, target: str, thing: Thing) -> None:
    store.put(GROUP, target, thing.name, GROUP.render(thing, (thing.name, thing.tier)))


def test_families_stay_contiguous_across_targets_and_objects() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    put(store, "b", Thing("two", "dev", 2, ("y", "z")))
    lines = render(store).decode().splitlines()
    families = [line.split("{")[0] for line in lines if not line.startswith("#")]
    assert families == sorted(families, key=["thing_size", "thing_tag_info"].index)
    assert lines.count("# TYPE thing_size gauge") == 1


def test_update_replaces_and_delete_removes_every_series() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    put(store, "a", Thing("one", "dev", 5, ()))
    samples = parse_samples(render(store).decode())
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("thing_size", {"thing": "one", "tier": "dev"}, 5)
    ]
    store.delete(GROUP, "a", "one")
    assert render(store) == b""


def test_replace_drops_objects_missing_from_the_listing_only_in_that_target() -> None:
    store = Store([GROUP])
    for name in ("one", "two", "three"):
        put(store, "a", Thing(name, "prod", 1))
    put(store, "b", Thing("other", "prod", 1))
    store.replace(GROUP, "a", {"two": GROUP.render(Thing("two", "prod", 2), ("two", "prod"))})
    things = {s.labels["thing"] for s in parse_samples(render(store).decode())}
    assert things == {"two", "other"}
    assert keys(store, GROUP, "a") == {"two"} and count(store, GROUP, "b") == 1


def test_gzip_is_one_member_equal_to_the_text_even_after_changes() -> None:
    store = Store([GROUP])
    for index in range(300):
        put(store, "a", Thing(f"thing-{index}", "prod", index, ("x", "y")))
    suffix = b"# HELP own Own.\n# TYPE own gauge\nown 1\n"
    for round_ in range(3):
        body = render_gzip(store, suffix)
        # What httpx and other single-member gzip readers do.
        single = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert single.decompress(body) + single.flush() == render(store, suffix)
        assert single.unused_data == b""
        assert gzip.decompress(body) == render(store, suffix)
        put(store, "a", Thing(f"thing-{round_}", "dev", -1, ()))
        store.delete(GROUP, "a", f"thing-{round_ + 100}")


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(("put", "delete", "replace")),
        st.integers(0, 40),
        st.one_of(st.none(), st.integers(-5, 5)),
        st.one_of(st.none(), st.integers(0, 8)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_every_scrape_is_exact_whatever_was_left_to_bring_up_to_date(
    operations: list[tuple[str, int, int | None, int | None]],
) -> None:
    """Changes interleaved with partial compaction (the background's slices): text and gzip always equal the
    objects held at that moment."""
    check_operations(operations)


@settings(max_examples=200, deadline=None)
@given(OPERATIONS)
def test_every_scrape_is_exact_when_objects_share_cells(
    operations: list[tuple[str, int, int | None, int | None]],
) -> None:
    """The same with two cells, so objects share a cell's columns and a deletion moves another object."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "CELLS", 2)
        check_operations(operations)


def check_operations(operations: list[tuple[str, int, int | None, int | None]]) -> None:
    """Apply `operations` to a store, compacting part of it after some, and compare every scrape with a
    store built from scratch out of the objects held at that moment."""
    store = Store([GROUP])
    held: dict[str, Thing] = {}
    suffix = b"own 1\n"
    for kind, number, size, limit in operations:
        name = f"thing-{number % 7}" if kind != "replace" else ""
        if kind == "put":
            held[name] = Thing(name, "prod" if number % 2 else "dev", size, ("x",) * (number % 3))
            put(store, "a", held[name])
        elif kind == "delete":
            held.pop(name, None)
            store.delete(GROUP, "a", name)
        else:
            kept = {key: thing for key, thing in held.items() if number % 2 or key < "thing-3"}
            held = kept
            store.replace(GROUP, "a", {key: GROUP.render(t, (t.name, t.tier)) for key, t in kept.items()})
        if limit is not None:
            if limit % 2:
                store.gzip_parts()  # a gzip scrape leaves what waits as stored blocks
            store.deflate(limit * 100)
            if not number % 3:  # a change lands right after some pieces were deflated
                held["late"] = Thing("late", "prod", number, ("x",) * (number % 4))
                put(store, "a", held["late"])
                store.gzip_parts()
            if number % 2:
                for _ in itertools.islice(store.prepare_gzip(), limit):
                    pass
        expected = Store([GROUP])
        for thing in held.values():
            put(expected, "a", thing)
        text = render(store, suffix)
        assert sorted(text.splitlines()) == sorted(render(expected, suffix).splitlines())
        assert gzip.decompress(render_gzip(store, suffix)) == text
    compact(store)
    assert store.pending() == 0
    assert not store.deflate(10)


def test_only_real_changes_ask_for_compaction() -> None:
    changes: list[int] = []
    store = Store([GROUP])
    store.on_change = lambda: changes.append(1)
    thing = Thing("one", "prod", 1, ("x",))
    put(store, "a", thing)
    assert changes and store.pending() == 2
    compact(store)
    changes.clear()
    put(store, "a", thing)
    store.delete(GROUP, "a", "never-there")
    store.retain(GROUP, "a", {"one"})
    assert changes == [] and store.pending() == 0
    put(store, "a", Thing("one", "prod", 2, ("x",)))
    assert changes == [1] and store.pending() == 1  # only the family whose samples changed


def test_label_values_are_escaped_and_values_formatted() -> None:
    hostile = 'a"b\\c\nd😀'
    store = Store([GROUP])
    put(store, "a", Thing(hostile, "prod", 1e20, (hostile,)))
    samples = parse_samples(render(store).decode())
    assert {s.labels["thing"] for s in samples} == {hostile}
    assert escape_label_value('"\\\n') == '\\"\\\\\\n'
    assert [format_value(v) for v in (1.0, 0.25, float("inf"), float("nan"), 1e20)] == [
        "1",
        "0.25",
        "+Inf",
        "NaN",
        "1e+20",
    ]


def test_a_piece_larger_than_one_stored_block_is_served_before_and_after_deflating() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("big", "prod", 1, tuple(f"tag-{index:06d}" for index in range(8000))))
    text = render(store)
    assert len(text) > 4 * 0xFFFF
    assert gzip.decompress(render_gzip(store)) == text  # not yet deflated: stored blocks
    compact(store)
    body = render_gzip(store)
    assert gzip.decompress(body) == text and len(body) < len(text) // 4
