"""Fuzzing every parser that takes upstream (or operator) bytes, 10,000 examples each: the SSE framing, the
environment and agent decoders through rendering and back through prometheus_client's parser, the paging
links, Retry-After, and the configuration loader with hostile YAML. Each target must give a result within
its contract or raise its one documented exception, never anything else.

Hypothesis draws plain bytes and `Choices` turns them into structured input: drawing nested strategies
costs 3-10 ms an example, bytes well under one, and shrinking bytes still shrinks the input (fewer bytes,
fewer edits; smaller bytes, earlier pool entries)."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import decode
from exporter.config import ConfigError, ConfluentTarget, load_settings
from exporter.confluent import metrics as confluent_metrics
from exporter.confluent.client import page_token_of
from exporter.confluent.model import InvalidAgent, decode_agent
from exporter.lenses import metrics as lenses_metrics
from exporter.lenses.framing import OVERSIZE, EventParser, SnapshotEnd, SnapshotItems
from exporter.lenses.model import InvalidEnvironment, decode_environment
from exporter.upstream import UpstreamError
from exporter.upstream_errors import MAX_RETRY_AFTER, parse_retry_after
from tests.support import parse_samples

T = TypeVar("T")

EXAMPLES = 10_000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BYTES = st.binary(max_size=96)


class Choices:
    """Reads decisions off a byte string; past its end every decision is 0 (the simplest choice)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        value = self.data[self.position]
        self.position += 1
        return value

    def below(self, bound: int) -> int:
        """A number in [0, bound)."""
        value = self.byte()
        if bound > 256:
            value = value << 8 | self.byte()
        return value % bound

    def pick(self, pool: Sequence[T]) -> T:
        return pool[self.below(len(pool))]

    @property
    def left(self) -> int:
        return len(self.data) - self.position

    def text(self, size: int) -> str:
        """Up to `size` characters anywhere in the Basic Multilingual Plane, lone surrogates included."""
        return "".join(chr(self.byte() << 8 | self.byte()) for _ in range(self.below(size + 1)))

    def raw(self, size: int) -> bytes:
        count = self.below(size + 1)
        start = self.position
        self.position += count
        return self.data[start : self.position]


# ----- values upstreams may send ------------------------------------------------------------------------

HOSTILE_TEXT = (
    "",
    "text",
    '"',
    "\\",
    "\n",
    "\r",
    'a"b\\c\nd',
    "😀",
    "\ud800",
    "\x00",
    "}{",
    "=",
    ",",
    "# HELP x",
    "x" * 300,
    "development",
    "production",
    "READY",
    "RUNNING",
    "lkc-1",
)
TIMESTAMPS = (
    "2025-10-24T16:23:29.612Z",
    "2025-10-24T16:23:29Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2025-10-24T16:23:29",
    "2025-13-45T99:99:99Z",
    "2025-10-24T16:23:29.612+25:00",
    "1970-01-01T00:00:00Z",
    "now",
    "2025-10-24T16:23:29.612Z" + " " * 60,
)
NUMBERS = (0, 1, -1, 0.5, -0.0, 10**30, -(10**30), 2**64 + 1, 2**53 + 1, 1.7e308, -1.7e308, 1e-320, 10**400)
NON_FINITE = (float("nan"), float("inf"), float("-inf"))  # Python's JSON decoder accepts NaN and Infinity
VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    *NUMBERS,
    *NON_FINITE,
    *HOSTILE_TEXT,
    *TIMESTAMPS,
    [],
    {},
    [1, "two", None],
    {"x": 1},
    {"nested": {"deeper": [{}]}},
    ["tool-a", "tool-a", 3, None, "x" * 300],
    {"metrics": True, "k2k": "yes", "": False},
)


def hostile_value(choices: Choices) -> Any:
    """A value from the pool, or a fresh integer, float or text."""
    kind = choices.below(8)
    if kind == 5:
        return int.from_bytes(choices.raw(12), "big", signed=True)
    if kind == 6:
        return choices.text(12)
    if kind == 7:
        raw = choices.raw(8).ljust(8, b"\0")
        number = float.fromhex(raw.hex()[:13]) if raw else 0.0
        return -number if choices.below(2) else number
    return choices.pick(VALUES)


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a key or item of a JSON value (containers included)."""
    paths: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        paths.append((*prefix, key))
        paths.extend(leaf_paths(item, (*prefix, key)))
    return paths


def mutated(template: dict[str, Any], choices: Choices) -> Any:
    """The template with edits read off the bytes: a key removed, a value replaced, a key added; now and
    then not an object at all."""
    if choices.below(24) == 0:
        return hostile_value(choices)
    result = copy.deepcopy(template)
    paths = leaf_paths(result)
    while choices.left > 0:
        path = choices.pick(paths)
        parent: Any = result
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, dict | list) and _has(parent, key) else None
        if not isinstance(parent, dict | list) or not _has(parent, path[-1]):
            continue
        action = choices.below(4)
        if action == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == 3 and isinstance(parent, dict):
            parent[choices.text(6)] = hostile_value(choices)
        else:
            parent[path[-1]] = hostile_value(choices)
    return json.loads(json.dumps(result))  # only what JSON can carry (and 10**400 as itself)


def _has(container: dict[Any, Any] | list[Any], key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and 0 <= key < len(container)


ENVIRONMENT: dict[str, Any] = {
    "name": "payments-prod",
    "display_name": "Payments",
    "lrn": "lrn:env:payments",
    "id": "0b9e",
    "created_at": "2025-10-24T16:23:29.612Z",
    "tier": "production",
    "status": {
        "agent_connected": True,
        "agent": {
            "updated_at": "2025-10-24T16:23:29.612Z",
            "roundtrip_duration": 1500000,
            "agent": {
                "hostname": "agent-1",
                "version": "6.0.0",
                "protocol_version": 3,
                "capabilities": {"metrics": True, "k2k": False},
            },
            "metrics": {
                "kafka": {"version": "3.7", "num_brokers": 3, "updated_at": "2025-10-24T16:23:29.612Z"},
                "data": {
                    "num_topics": 12,
                    "num_partitions": 60,
                    "topic_data_total_bytes": 123456789,
                    "data_in_bytes_per_sec": 1.5,
                    "updated_at": "2025-10-24T16:23:29.612Z",
                },
                "apps": {"num_consumers": 4, "num_other_apps": 1, "updated_at": "2025-10-24T16:23:29.612Z"},
                "connect": {"num_clusters": 1, "num_connectors": 2, "updated_at": "2025-10-24T16:23:29.612Z"},
                "other": {"num_issues": 0, "updated_at": "2025-10-24T16:23:29.612Z"},
            },
        },
    },
    "metadata": {"team": "payments", "cost-centre": "42"},
}

AGENT: dict[str, Any] = {
    "api_version": "sql/v1",
    "kind": "Agent",
    "name": "fraud-triage",
    "metadata": {
        "self": "https://flink.us-east-1.aws.confluent.cloud/sql/v1/organizations/o/environments/e/"
        "databases/lkc-1/agents/fraud-triage",
        "uid": "12345678-1234-1234-1234-123456789012",
        "created_at": "2025-10-24T16:23:29.612Z",
        "updated_at": "2025-10-24T16:23:29.612Z",
        "resource_name": "crn://confluent.cloud/agent=fraud-triage",
    },
    "spec": {
        "description": "secret plans",
        "model": "gpt-4o",
        "prompt": "a prompt that never becomes a label",
        "tools": ["search", "sql"],
        "properties": {"temperature": "0.2"},
    },
    "status": {"phase": "READY"},
}


def exposition(group: Any, rendered: tuple[bytes, ...]) -> str:
    """A group's rendered chunks as a text exposition, each family under its HELP and TYPE header."""
    parts = [family.header() + chunk for family, chunk in zip(group.families, rendered, strict=True) if chunk]
    return b"".join(parts).decode("utf-8")


def assert_round_trip(group: Any, rendered: tuple[bytes, ...], common: dict[str, str]) -> None:
    """The rendering parses back with prometheus_client: one sample per line, every one carrying the common
    labels with the values given (after the UTF-8 replacement the renderer applies), every value finite."""
    samples = parse_samples(exposition(group, rendered))
    assert len(samples) == sum(chunk.count(b"\n") for chunk in rendered)
    for sample in samples:
        for name, value in common.items():
            assert sample.labels[name] == value.encode("utf-8", "replace").decode("utf-8")
        assert math.isfinite(sample.value)


# ----- SSE framing --------------------------------------------------------------------------------------

SSE_LINES = (
    "data: {}",
    'data: {"name": "a"}',
    "data",
    "data:",
    "data:x",
    "event: snapshot",
    "event: environment_updated",
    "event:",
    "id: 7",
    "id: \x00",
    "id",
    "retry: 250",
    "retry: soon",
    "retry: ١٢",
    "retry: ²",
    "retry: " + "9" * 5000,
    ": keepalive",
    ": " + "k" * 100,
    ":",
    "",
    "",
    "",
    "no colon at all",
    "x-unknown: 1",
    "data: " + "y" * 100,
    "data: é€😀",
)
LINE_ENDS = ("\n", "\r\n", "\r")


def sse_stream(choices: Choices) -> bytes:
    """Event-stream bytes: plausible lines with mixed endings, now and then raw bytes spliced in."""
    out = bytearray()
    while choices.left > 0:
        kind = choices.below(10)
        if kind == 0:
            out += choices.raw(6)
        elif kind == 1:
            out += b"data: " + choices.text(6).encode("utf-8", "surrogatepass") + b"\n"
        else:
            out += (choices.pick(SSE_LINES) + choices.pick(LINE_ENDS)).encode()
    return bytes(out)


def cuts(data: bytes, choices: Choices) -> list[bytes]:
    """`data` split into chunks of sizes read off the bytes (an empty chunk now and then)."""
    chunks, start = [], 0
    while start < len(data):
        size = choices.below(12) if choices.left else len(data)
        chunks.append(data[start : start + size])
        start += size
    return chunks


def parsed(parser: EventParser, chunks: list[bytes]) -> list[tuple[str, str, str] | str]:
    """Each event as (name, data, id); a snapshot streamed item by item as `snapshot_outcome` says."""
    out: list[tuple[str, str, str] | str] = []
    items: list[Any] = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, SnapshotItems):
                items += event.items
            elif isinstance(event, SnapshotEnd):
                out.append(("snapshot", "invalid" if event.error else f"items {items!r}", event.id))
                items = []
            else:
                out.append("OVERSIZE" if event is OVERSIZE else (event.event, event.data, event.id))
                assert event is OVERSIZE or len(event.data) <= parser.max_event_bytes
        assert parser._partial_size <= parser.max_event_bytes
    return out


def snapshot_outcome(data: str) -> str:
    """What a streamed snapshot with this data (each item well under the cap) comes out as: its items,
    decoded as a listing's are, or `invalid`."""
    try:
        items = list(decode.listing(data, "items"))
    except decode.InvalidJSON:
        return "invalid"
    return f"items {items!r}"


@FUZZ
@given(stream=BYTES, chunking=st.binary(max_size=24), cap=st.sampled_from([16, 64, 256, 8192]))
def test_sse_framing_is_bounded_and_the_same_however_the_bytes_are_cut(
    stream: bytes, chunking: bytes, cap: int
) -> None:
    data = sse_stream(Choices(stream))
    whole = EventParser(cap)
    expected = parsed(whole, [data])
    chunked = EventParser(cap)
    assert parsed(chunked, cuts(data, Choices(chunking))) == expected
    assert (chunked.last_event_id, chunked.retry_ms) == (whole.last_event_id, whole.retry_ms)


@FUZZ
@given(stream=BYTES, chunking=st.binary(max_size=24))
def test_well_formed_events_come_out_exactly_as_sent(stream: bytes, chunking: bytes) -> None:
    choices = Choices(stream)
    sent: list[tuple[str, str, str]] = []
    text = ""
    while choices.left > 0:
        name = choices.pick(("snapshot", "environment_updated", "environment_deleted"))
        lines = [choices.text(8).replace("\r", "").replace("\n", "") for _ in range(1 + choices.below(3))]
        end = choices.pick(LINE_ENDS)
        if choices.below(2):
            text += ": keepalive" + end
        event_id = str(len(sent))
        text += f"id: {event_id}{end}event: {name}{end}" + "".join(f"data: {line}{end}" for line in lines)
        text += end
        data = "\n".join(lines).encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        sent.append((name, snapshot_outcome(data) if name == "snapshot" else data, event_id))
    encoded = text.encode("utf-8", "surrogatepass")
    assert parsed(EventParser(8192), cuts(encoded, Choices(chunking))) == sent


# ----- environments -------------------------------------------------------------------------------------

UNITS = tuple(sorted(lenses_metrics.ROUNDTRIP_UNITS))
METADATA_LABELS = ((), ("team",), ("team", "cost-centre", "missing"))
GROUPS = {
    (unit, labels): lenses_metrics.build_group(unit, labels) for unit in UNITS for labels in METADATA_LABELS
}


@FUZZ
@given(edits=BYTES, unit=st.sampled_from(UNITS), metadata=st.sampled_from(METADATA_LABELS))
def test_any_environment_json_decodes_or_is_refused_and_renders_parseable_text(
    edits: bytes, unit: str, metadata: tuple[str, ...]
) -> None:
    raw = mutated(ENVIRONMENT, Choices(edits))
    try:
        environment = decode_environment(raw)
    except InvalidEnvironment:
        assert not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]
        return
    group = GROUPS[(unit, metadata)]
    values = lenses_metrics.common_values(environment, "hq")
    rendered = group.render(environment, values)
    assert len(rendered) == len(group.families)
    assert_round_trip(group, rendered, dict(zip(group.common_labels, values, strict=True)))


# ----- agents -------------------------------------------------------------------------------------------

TARGET = ConfluentTarget(
    name="flink", url="http://127.0.0.1:1", organization_id="org", environment_id="env-1", tier="production"
)


@FUZZ
@given(edits=BYTES)
def test_any_agent_json_decodes_or_is_refused_and_renders_parseable_text(edits: bytes) -> None:
    raw = mutated(AGENT, Choices(edits))
    try:
        agent = decode_agent(raw)
    except InvalidAgent:
        return
    values = confluent_metrics.common_values(TARGET, agent)
    rendered = confluent_metrics.GROUP.render(agent, values)
    assert_round_trip(
        confluent_metrics.GROUP, rendered, dict(zip(confluent_metrics.COMMON_LABELS, values, strict=True))
    )
    text = exposition(confluent_metrics.GROUP, rendered)
    assert "prompt" not in text and "secret plans" not in text


# ----- paging links -------------------------------------------------------------------------------------

URL_PIECES = (
    "https://flink.us-east-1.aws.confluent.cloud/sql/v1/organizations/o/environments/e/agents",
    "http://127.0.0.1:8080/x",
    "http://[::1]:99999/x",
    "http://[bad",
    "https://h/p",
    "?page_token=",
    "?page_token=abc",
    "&page_token=other",
    "?page_size=10",
    "page_token=x",
    "%00%ff",
    "%",
    "&",
    "=",
    "#frag",
    "//h",
    ":0",
    " ",
    "\x00",
    "\ud800",
    "é",
)


@FUZZ
@given(link=BYTES)
def test_a_next_link_gives_a_token_or_a_decode_error(link: bytes) -> None:
    choices = Choices(link)
    if choices.below(8) == 0:
        metadata: Any = {"next": hostile_value(choices)} if choices.below(2) else hostile_value(choices)
    else:
        pieces = []
        while choices.left > 0:
            pieces.append(choices.pick(URL_PIECES) if choices.below(3) else choices.text(4))
        metadata = {"next": "".join(pieces), "total_size": 3}
    try:
        token = page_token_of(metadata)
    except UpstreamError as error:
        assert error.reason == "decode"
        return
    assert token is None or (isinstance(token, str) and token)


# ----- Retry-After --------------------------------------------------------------------------------------

RETRY_VALUES = (
    "1",
    "0",
    "-5",
    "120",
    "1e400",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "  5  ",
    "0x10",
    "½",
    "١٢",
    "",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "Wed, 21 Oct 9999 07:28:00 GMT",
    "Mon, 01 Jan 0001 00:00:00 GMT",
    "Wed, 21 Oct 2015 07:28:00 -0000",
    "Wed, 21 Oct 2015 07:28:00 +9999",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "21 Oct 2015",
    "Wed, 32 Oct 2015 25:61:61 GMT",
    "Wed, 21 Oct 2015",
)


@FUZZ
@given(headers=BYTES)
def test_retry_after_is_a_bounded_number_of_seconds_or_none(headers: bytes) -> None:
    choices = Choices(headers)
    given_headers: dict[str, str] = {}
    while choices.left > 0:
        name = choices.pick(("retry-after", "x-ratelimit-reset", "x-other"))
        kind = choices.below(4)
        if kind == 0:
            value = choices.text(10)
        elif kind == 1:
            value = choices.raw(12).decode("latin-1")
        else:
            value = choices.pick(RETRY_VALUES)
        given_headers[name] = value
    wait = parse_retry_after(given_headers)
    assert wait is None or (math.isfinite(wait) and 0.0 <= wait <= MAX_RETRY_AFTER)


# ----- the configuration loader -------------------------------------------------------------------------

CONFIG_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    3,
    10**400,
    1.5,
    float("nan"),
    "",
    " ",
    "30s",
    "0s",
    "-5s",
    "1h30m",
    "9" * 500 + "s",
    "²",
    ":²",
    ":9877",
    "127.0.0.1:0",
    ":99999",
    "[::1]:0",
    "http://hq",
    "https://user:pass@hq",
    "ftp://hq",
    "http://[::1",
    "http://hq:99999",
    "8MiB",
    "99999999999999999999GiB",
    "~nobody-here/token",
    "/dev/null",
    "/nonexistent/file",
    "/proc/self/mem",
    "a\x00b",
    "${HOME}",
    "${UNSET}",
    "${UNSET:-30s}",
    "${",
    "$$",
    "production",
    "debug",
    "console",
    "ns",
    [],
    {},
    ["team", "team"],
    ["a.b", "a-b"],
    [None, 1],
    {"x": 1},
)
TOP_KEYS = ("web", "log", "lenses", "confluent")
SECTION_KEYS = {
    "web": ("listen_address", "config_file", "telemetry_path"),
    "log": ("level", "format"),
    "lenses": (
        *("name", "url", "token", "token_file", "poll_interval", "sse", "metadata_labels", "timeout"),
        *("roundtrip_duration_unit", "sse_max_event_bytes", "kafka_connections_concurrency", "tls"),
    ),
    "confluent": ("targets", "concurrency"),
    "target": (
        *("name", "url", "organization_id", "environment_id", "api_key", "api_secret", "api_key_file"),
        *("token", "token_file", "tier", "page_size", "max_pages", "proxy_url", "tls", "poll_interval"),
    ),
    "tls": ("ca_file", "insecure_skip_verify"),
}
# Self-referencing aliases and numbers of thousands of digits cost milliseconds each (a RecursionError
# unwinding, PyYAML scanning 5000 characters): they are pinned once each further down instead.
YAML_TRICKS = (
    "x: " + "[" * 20 + "]" * 20 + "\n",  # deeper nesting, once, in the test after this one
    "x: " + "{a: " * 10 + "1" + "}" * 10 + "\n",
    "a: &a [1,2,3]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n",
    "? [a, b]\n: 1\n",
    "? {a: b}\n: 1\n",
    "!!python/object/apply:os.system ['true']\n",
    "lenses: !!binary aGVsbG8=\n",
    "lenses:\n  url: http://hq\n  token: t\n  poll_interval: 2001-12-14\n",
    "lenses: {url: http://hq, token: t, timeout: !!float .nan}\n",
    "web:\n  listen_address: ':²'\n",
    "%YAML 1.1\n%YAML 1.1\n---\n",
    "\ufeff\x00\x01",
    "key: 'unterminated\n",
    "- a\nb: c\n",
    "lenses: {url: http://hq, token: t, token: u}\n",
    "<<: {lenses: 1}\n",
    "lenses:\n  <<: [{url: http://hq}, {token: t}]\n",
    "lenses: {url: http://hq, token: t}\n---\nlenses: {}\n",
    "\t",
    "@",
)


def config_value(choices: Choices, depth: int = 0) -> Any:
    kind = choices.below(10)
    if kind == 0 and depth < 2:
        return [config_value(choices, depth + 1) for _ in range(choices.below(3))]
    if kind == 1:
        return choices.text(8)
    return choices.pick(CONFIG_VALUES)


def config_section(choices: Choices, keys: tuple[str, ...], depth: int) -> dict[str, Any]:
    section: dict[str, Any] = {}
    for _ in range(choices.below(5)):
        key = choices.pick(keys) if choices.below(8) else choices.text(4)
        if key == "targets" and depth < 2:
            section[key] = [
                config_section(choices, SECTION_KEYS["target"], depth + 1) for _ in range(choices.below(3))
            ]
        elif key == "tls" and depth < 3:
            section[key] = config_section(choices, SECTION_KEYS["tls"], depth + 1)
        else:
            section[key] = config_value(choices)
    return section


def config_text(choices: Choices) -> str:
    """A configuration file: a document of known (and unknown) keys with hostile values, dumped as YAML, or
    raw text, with one of the YAML tricks now and then."""
    kind = choices.below(8)
    if kind == 0:
        return choices.raw(40).decode("utf-8", "replace")
    if kind == 1:
        return choices.text(30)
    document: dict[str, Any] = {}
    if choices.below(3):
        document["lenses"] = {"url": "http://hq", "token": "t"}
    for _ in range(choices.below(4)):
        key = choices.pick(TOP_KEYS) if choices.below(8) else choices.text(4)
        keys = SECTION_KEYS.get(key, ())
        if keys and choices.below(6):
            base = document.get(key) if isinstance(document.get(key), dict) else {}
            document[key] = {**base, **config_section(choices, keys, 0)}
        else:
            document[key] = config_value(choices)
    text = yaml.safe_dump(document, allow_unicode=True)
    if kind == 2:
        text += choices.pick(YAML_TRICKS)
    elif kind == 3:
        text = choices.pick(YAML_TRICKS)
    return text


@pytest.fixture(scope="module")
def config_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@FUZZ
@given(document=st.binary(max_size=64))
def test_hostile_yaml_gives_settings_or_a_config_error(config_directory: Path, document: bytes) -> None:
    path = config_directory / "config.yml"
    path.write_text(config_text(Choices(document)), encoding="utf-8", errors="surrogatepass")
    try:
        load_settings(path, {"HOME": "/nonexistent"})
    except ConfigError as error:
        assert str(error)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x: " + "[" * 600 + "]" * 600 + "\n", id="nested-deeper-than-the-parser-recurses"),
        pytest.param(
            "a: &a [1,2,3,4,5,6,7,8,9,10]\n"
            + "".join(
                f"{chr(98 + level)}: &{chr(98 + level)} [{','.join([f'*{chr(97 + level)}'] * 10)}]\n"
                for level in range(5)
            ),
            id="aliases-of-aliases",
        ),
    ],
)
def test_yaml_too_deep_or_too_large_is_a_config_error(config_directory: Path, text: str) -> None:
    """Too slow to draw ten thousand times, so each once: a YAML document nested deeper than PyYAML can
    recurse, and an alias bomb of a million values."""
    path = config_directory / "config.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_settings(path, {})


# ----- what the fuzzing found, pinned -------------------------------------------------------------------


def test_a_chunk_ending_just_before_a_line_end_does_not_end_an_oversize_event() -> None:
    parser = EventParser(16)
    events = parser.feed(b"event: environment_updated\ndata: " + b"x" * 40)
    events += parser.feed(b"\ndata: the rest of the same event")
    events += parser.feed(b"\n")
    assert events == []  # still inside the dropped event: no early OVERSIZE, no fragment as an event
    events = parser.feed(b"\ndata: next\n\n")
    assert [("OVERSIZE" if e is OVERSIZE else e.data) for e in events] == ["OVERSIZE", "next"]


def test_a_long_comment_split_across_chunks_does_not_count_against_the_event() -> None:
    parser = EventParser(16)
    chunks = [b"data: {", b"}\n: keepali", b"ve, a comment longer than the cap\n\n"]
    assert parsed(parser, chunks) == [("message", "{}", "")]


def test_an_empty_chunk_between_cr_and_lf_keeps_them_one_line_end() -> None:
    parser = EventParser(1024)
    assert parsed(parser, [b"data: x\r", b"", b"\ndata: y\n\n"]) == [("message", "x\ny", "")]


def test_a_retry_field_int_cannot_read_is_ignored() -> None:
    parser = EventParser(1 << 20)
    parser.feed(("retry: ²\nretry: " + "9" * 5000 + "\n\n").encode())
    assert parser.retry_ms is None


def test_a_next_link_with_a_lone_surrogate_is_a_decode_error() -> None:
    with pytest.raises(UpstreamError) as raised:
        page_token_of({"next": "https://h/p?page_token=a\ud800"})
    assert raised.value.reason == "decode"


def test_a_retry_after_of_nan_is_not_a_wait() -> None:
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({"retry-after": "NaN", "x-ratelimit-reset": "7"}) == 7.0
    assert parse_retry_after({"x-ratelimit-reset": "nan"}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "nested too deeply"),
        ("lenses: &l {url: http://hq, token: t, tls: *l}\n", "nested too deeply"),
        ("lenses:\n  url: http://hq\n  token: t\n  metadata_labels: &x [a, *x]\n", "nested too deeply"),
        ("x: " + "9" * 5000 + "\n", "thousands of digits"),
        ("lenses: {url: http://hq, token: t, kafka_connections_concurrency: " + "9" * 400 + "}\n", "must be"),
        ("lenses: {url: http://hq, token: t}\nweb: {listen_address: ':²'}\n", "web.listen_address"),
        ('lenses: {url: http://hq, token_file: "a\\0b"}\n', "lenses.token_file: a path cannot contain"),
        ("lenses: {url: http://hq, token_file: ~no-such-user-here/t}\n", "lenses.token_file: cannot expand"),
    ],
)
def test_hostile_configurations_found_by_fuzzing(config_directory: Path, text: str, message: str) -> None:
    path = config_directory / "config.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, {})
