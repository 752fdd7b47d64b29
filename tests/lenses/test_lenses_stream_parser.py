"""The bounded event-stream framing: line endings, multi-line data, comments, ids, retry, size cap."""

from __future__ import annotations

import json

from httpx_sse import ServerSentEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.lenses.framing import OVERSIZE, Event, EventParser, SnapshotEnd, SnapshotItems


def feed_all(parser: EventParser, chunks: list[bytes]) -> list[tuple[str, str, str]]:
    """Each event as (name, data, id); a snapshot streamed item by item as its items' JSON (or its error)."""
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    out, items = [], []
    for e in events:
        if isinstance(e, SnapshotItems):
            items += e.items
        elif isinstance(e, SnapshotEnd):
            out.append(("snapshot", e.error or json.dumps({"items": items}), e.id))
            items = []
        else:
            out.append((e.event, e.data, e.id))
    return out


def test_events_with_every_line_ending_and_multiline_data() -> None:
    for end in ("\n", "\r\n", "\r"):
        text = end.join(
            [
                "retry: 5000",
                ": keepalive",
                "id: 1",
                "event: snapshot",
                'data: {"items":',
                "data: []}",
                "",
                "id: 2",
                "event: environment_deleted",
                'data: {"name": "a"}',
                "",
                "id: 3",
                "event: environment_updated",
                'data: {"name":',
                'data: "b"}',
                "",
                "",
            ]
        )
        parser = EventParser(1024)
        assert feed_all(parser, [text.encode()]) == [
            ("snapshot", '{"items": []}', "1"),
            ("environment_deleted", '{"name": "a"}', "2"),
            ("environment_updated", '{"name":\n"b"}', "3"),
        ], repr(end)
        assert parser.retry_ms == 5000
        assert parser.last_event_id == "3"


def test_chunk_boundaries_anywhere_give_the_same_events() -> None:
    text = b'id: 7\r\nevent: environment_updated\r\ndata: {"name": "\xc3\xa9t\xc3\xa9"}\r\n\r\n'
    whole = feed_all(EventParser(1024), [text])
    assert whole == [("environment_updated", '{"name": "été"}', "7")]
    for cut in range(1, len(text)):
        assert feed_all(EventParser(1024), [text[:cut], text[cut:]]) == whole, cut
    assert feed_all(EventParser(1024), [bytes([b]) for b in text]) == whole


def test_comment_and_id_without_data_dispatch_nothing_but_keep_the_id() -> None:
    parser = EventParser(1024)
    assert feed_all(parser, [b"id: 5\n\n: keepalive\n\n"]) == []
    assert parser.last_event_id == "5"


def test_event_without_name_is_a_message_and_unknown_fields_are_ignored() -> None:
    assert feed_all(EventParser(1024), [b"foo: bar\ndata:x\n\n"]) == [("message", "x", "")]


def test_oversize_event_is_dropped_whole_and_the_stream_goes_on() -> None:
    parser = EventParser(100)
    big = b"event: environment_updated\ndata: " + b"x" * 500 + b"\n\n"
    small = b"event: environment_deleted\ndata: {}\n\n"
    events = []
    for chunk in (big[:50], big[50:300], big[300:], small):
        events.extend(parser.feed(chunk))
    assert events[0] is OVERSIZE
    assert [(e.event, e.data) for e in events[1:]] == [("environment_deleted", "{}")]


def test_many_data_lines_over_the_cap_are_dropped() -> None:
    parser = EventParser(100)
    text = b"".join(b"data: 0123456789\n" for _ in range(50)) + b"\ndata: ok\n\n"
    events = parser.feed(text)
    assert events[0] is OVERSIZE
    assert events[1].data == "ok"


def test_a_line_with_no_end_never_grows_the_buffer_beyond_the_cap() -> None:
    parser = EventParser(1000)
    for _ in range(1000):
        parser.feed(b"y" * 1000)
    assert parser._partial_size <= 1000
    assert parser.feed(b"\n\ndata: after\n\n")[-1].data == "after"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise(data: bytes, chunk: int) -> None:
    parser = EventParser(256)
    for start in range(0, len(data), chunk):
        for event in parser.feed(data[start : start + chunk]):
            assert not isinstance(event, ServerSentEvent) or event is OVERSIZE or len(event.data) <= 256


def test_a_new_connection_forgets_the_half_event_but_keeps_id_and_retry() -> None:
    parser = EventParser(1024)
    parser.feed(b'retry: 300\nid: 9\n\nevent: environment_updated\ndata: {"name": "ha')
    parser.new_connection()
    assert feed_all(parser, [b'event: snapshot\ndata: {"items": []}\n\n']) == [
        ("snapshot", '{"items": []}', "9")
    ]
    assert (parser.last_event_id, parser.retry_ms) == ("9", 300)


def test_an_id_no_header_can_carry_back_resets_the_last_id_and_is_reported() -> None:
    dropped: list[None] = []
    parser = EventParser(16 * 1024 * 1024, lambda: dropped.append(None))
    feed_all(parser, [b"id: 41\ndata: a\n\n"])
    assert parser.last_event_id == "41"
    for bad in ("caf\u00e9", "x" * 257, "tab\there", "x" * 8 * 1024 * 1024):
        feed_all(parser, [b"id: 42\ndata: b\n\n", f"id: {bad}\ndata: c\n\n".encode()])
        assert parser.last_event_id == "", bad[:20]
    assert len(dropped) == 4
    feed_all(parser, [b"id: " + b"7" * 256 + b"\ndata: d\n\n"])
    assert parser.last_event_id == "7" * 256 and len(dropped) == 4
