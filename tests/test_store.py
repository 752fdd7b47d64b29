"""The per-object store: contiguous families, exact replacement and deletion, gzip from cached cells."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.store import Family, FamilyGroup, Sample, Store, escape_label_value, format_value
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


def put(store: Store, partition: str, thing: Thing) -> None:
    store.put(GROUP, partition, thing.name, GROUP.render(thing, (thing.name, thing.tier)))


def test_families_stay_contiguous_across_partitions_and_objects() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    put(store, "b", Thing("two", "dev", 2, ("y", "z")))
    lines = store.render().decode().splitlines()
    families = [line.split("{")[0] for line in lines if not line.startswith("#")]
    assert families == sorted(families, key=["thing_size", "thing_tag_info"].index)
    assert lines.count("# TYPE thing_size gauge") == 1


def test_update_replaces_and_delete_removes_every_series() -> None:
    store = Store([GROUP])
    put(store, "a", Thing("one", "prod", 1, ("x",)))
    put(store, "a", Thing("one", "dev", 5, ()))
    samples = parse_samples(store.render().decode())
    assert [(s.name, s.labels, s.value) for s in samples] == [
        ("thing_size", {"thing": "one", "tier": "dev"}, 5)
    ]
    store.delete(GROUP, "a", "one")
    assert store.render() == b""


def test_replace_drops_objects_missing_from_the_listing_only_in_that_partition() -> None:
    store = Store([GROUP])
    for name in ("one", "two", "three"):
        put(store, "a", Thing(name, "prod", 1))
    put(store, "b", Thing("other", "prod", 1))
    store.replace(GROUP, "a", {"two": GROUP.render(Thing("two", "prod", 2), ("two", "prod"))})
    things = {s.labels["thing"] for s in parse_samples(store.render().decode())}
    assert things == {"two", "other"}
    assert store.keys(GROUP, "a") == {"two"} and store.count(GROUP, "b") == 1


def test_gzip_is_one_member_equal_to_the_text_even_after_changes() -> None:
    store = Store([GROUP])
    for index in range(300):
        put(store, "a", Thing(f"thing-{index}", "prod", index, ("x", "y")))
    suffix = b"# HELP own Own.\n# TYPE own gauge\nown 1\n"
    for round_ in range(3):
        body = store.render_gzip(suffix)
        # What httpx and other single-member gzip readers do.
        single = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert single.decompress(body) + single.flush() == store.render(suffix)
        assert single.unused_data == b""
        assert gzip.decompress(body) == store.render(suffix)
        put(store, "a", Thing(f"thing-{round_}", "dev", -1, ()))
        store.delete(GROUP, "a", f"thing-{round_ + 100}")


def test_label_values_are_escaped_and_values_formatted() -> None:
    hostile = 'a"b\\c\nd😀'
    store = Store([GROUP])
    put(store, "a", Thing(hostile, "prod", 1e20, (hostile,)))
    samples = parse_samples(store.render().decode())
    assert {s.labels["thing"] for s in samples} == {hostile}
    assert escape_label_value('"\\\n') == '\\"\\\\\\n'
    assert [format_value(v) for v in (1.0, 0.25, float("inf"), float("nan"), 1e20)] == [
        "1",
        "0.25",
        "+Inf",
        "NaN",
        "1e+20",
    ]
