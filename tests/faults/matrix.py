"""The fault matrix: every row (a way the world breaks), the outcome each test measures for it, and the
report (`docs/reliability.md`) written from those outcomes when the suite runs with RELIABILITY_REPORT=1."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPORT = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
REPORT_VARIABLE = "RELIABILITY_REPORT"


@dataclass(frozen=True)
class Row:
    """One way the world breaks: an id (what the doc and the tests share), the fault, and what the exporter
    must show."""

    id: str
    fault: str
    expected: str


ROWS = (
    Row(
        "down-at-start",
        "Upstream not listening when the exporter starts",
        "`up` 0 (connect), ready; up 1 once it listens",
    ),
    Row(
        "down-mid-run",
        "Upstream stops mid-run, then comes back",
        "`up` 0, stream reconnecting, data kept; recovery",
    ),
    Row("5xx-burst", "Every request answered 503", "`up` 0 (http_5xx) after retries, data kept; recovery"),
    Row(
        "429-retry-after",
        "Every request answered 429 with Retry-After: 1",
        "waits as asked, then `up` 0 (http_429)",
    ),
    Row(
        "429-no-headers",
        "Every request answered 429 without rate-limit headers",
        "backs off, then `up` 0 (http_429)",
    ),
    Row("slow-responses", "Responses slower than the timeout", "`up` 0 (timeout), data kept; recovery"),
    Row("body-truncated", "JSON bodies cut in the middle", "`up` 0 (decode), data kept; recovery"),
    Row("body-not-json", "An HTML error page with status 200", "`up` 0 (decode), data kept; recovery"),
    Row("body-wrong-content-type", "A JSON body served as text/html", "`up` 0 (content_type), data kept"),
    Row("drift-nulls", "Every field but the name null", "`up` 1, only the null fields' series dropped"),
    Row(
        "drift-wrong-types",
        "Strings for numbers, numbers for strings",
        "`up` 1, numbers as decimal strings read, other wrongly typed series dropped",
    ),
    Row("drift-missing-blocks", "Whole blocks missing (agent metrics, spec)", "`up` 1, their series dropped"),
    Row("drift-huge-numbers", "Numbers of 10^30, 2^64+1 and 1.7e308", "`up` 1, exported as floats"),
    Row("drift-negative", "Negative counts and durations", "`up` 1, dropped and counted as invalid fields"),
    Row(
        "item-nesting-bomb",
        "One object of a listing nested 1,000 deep",
        "`up` 1, that object dropped and counted, the rest applied",
    ),
    Row(
        "item-huge-integer",
        "One object with a 5,000-digit integer",
        "`up` 1, only that field dropped",
    ),
    Row(
        "item-invalid-utf8",
        "Invalid UTF-8 in one object's name",
        "`up` 1, the name kept with U+FFFD, the rest applied",
    ),
    Row(
        "names-colliding",
        "Names that differ only in lone surrogates (and one with a real `?`)",
        "`up` 1, one series per label set, valid OpenMetrics",
    ),
    Row(
        "labels-unbounded",
        "A 100 KB name or model, 20,000 capabilities, tools and metadata keys",
        "`up` 1, values cut at 1 KiB, fan-out capped, each cut counted",
    ),
    Row("sse-404", "The live stream answers 404", "stream `unavailable`, polling keeps `up` 1; found again"),
    Row(
        "sse-cut-mid-event",
        "The stream drops in the middle of an event",
        "reconnect, the event re-read via the snapshot",
    ),
    Row("sse-silent", "The stream stays open and sends nothing", "idle timeout, reconnecting; reconnect"),
    Row(
        "sse-garbage",
        "Garbage lines and unknown events around every event",
        "events still applied, unknown counted",
    ),
    Row(
        "sse-oversize",
        "One event larger than sse_max_event_bytes",
        "dropped and counted `oversize`, stream stays open",
    ),
    Row(
        "sse-nesting-bomb",
        "A stream event nested 10,000 deep",
        "dropped and counted `invalid`, the stream and the listing loop go on",
    ),
    Row("sse-flood", "10,000 events a second for a few seconds", "memory bounded, scrapes served, converges"),
    Row(
        "nesting-bomb-listing",
        "A listing body (Confluent: its second page) nested 10,000 deep",
        "`up` 0, the listing loop goes on; up 1 within a poll interval of healing",
    ),
    Row(
        "nesting-bomb-error-body",
        "A 500 whose error object is nested 10,000 deep",
        "`up` 0, the listing loop goes on; up 1 within a poll interval of healing",
    ),
    Row(
        "nesting-bomb-connections",
        "A Kafka-connection count nested 10,000 deep",
        "the listing loop goes on; a listing succeeds within a poll interval of healing",
    ),
    Row(
        "sse-invalid-json",
        "A live-stream event whose data is not JSON",
        "counted `invalid`, logged once; the stream stays open",
    ),
    Row(
        "sse-id-not-ascii",
        "A live-stream `id:` of non-ASCII text, then the stream dropped",
        "the id is dropped and counted, the stream reconnects without it",
    ),
    Row(
        "body-one-byte-a-second",
        "A body sent a byte at a time, each well inside the read timeout",
        "`up` 0 (timeout) within a poll interval plus request_deadline; not retried",
    ),
    Row(
        "body-gzip-bomb",
        "A gzip listing of 256 KB that inflates to 256 MB of blank lines",
        "`up` 0 (too_large), memory bounded, /healthz answering",
    ),
    Row(
        "sse-gzip-bomb",
        "A gzip live stream of 256 KB that inflates to 256 MB of blank lines",
        "the stream gives up (too_large) and reconnects later; /healthz answering throughout",
    ),
    Row(
        "large-failures-memory",
        "Listings of 300 MB (400 MB announced) cut off, again and again",
        "`up` 0 (network); resident memory back within 100 MB of the start after recovery",
    ),
    Row(
        "retry-after-300",
        "Every request answered 429 with Retry-After: 300",
        "`up` 0 (stale) within 3 poll intervals plus request_deadline, while the sync waits",
    ),
    Row(
        "sse-retry-1-close",
        "The stream says `retry: 1` and closes cleanly after every event",
        "reconnects no faster than the floor, re-lists no more than one per minimum gap",
    ),
    Row(
        "names-dot-dot",
        "Environments named `.` and `..` with Kafka connections polled",
        "each name's own kafka-connections path, percent-encoded; never another path",
    ),
    Row(
        "confluent-redirect-port",
        "The Confluent URL redirects to another port of the same host",
        "refused (redirect_refused) without sending the credentials",
    ),
    Row(
        "token-rotated",
        "Credentials rotated upstream and on disk",
        "the next request reads the new file; no restart",
    ),
    Row(
        "401-then-fixed",
        "Wrong credentials in the file, then fixed",
        "`up` 0 (http_401), then 1 without restart",
    ),
    Row(
        "credential-file-non-ascii",
        "A credential file rewritten with non-ASCII text, then fixed (with a BOM and a newline)",
        "`up` 0 with a clear error, no crash; up 1 once fixed",
    ),
    Row(
        "tls-untrusted",
        "Upstream TLS certificate from an unknown CA",
        "`up` 0 with a certificate reason; tls.ca_file recovers",
    ),
    Row(
        "scrapers-while-flapping",
        "50 concurrent scrapers while the upstream flaps",
        "every scrape parses, no crash, memory bounded",
    ),
)
ROW_IDS = tuple(row.id for row in ROWS)


@dataclass
class Outcome:
    """What a row measured for one source."""

    row: str
    source: str
    detected: str = "-"  # seconds until the exporter showed the fault, or how it showed
    recovered: str = "-"  # seconds from the fault clearing until `up` 1 and the data current
    during: str = ""  # what `up`, the reason and the stream showed while the fault lasted
    data: str = ""  # what happened to the data series


@dataclass
class Collector:
    """Outcomes recorded by the session's tests, in the order of ROWS."""

    outcomes: list[Outcome] = field(default_factory=list)

    def record(self, outcome: Outcome) -> None:
        assert outcome.row in ROW_IDS, outcome.row
        self.outcomes.append(outcome)

    def render(self) -> str:
        order = {row: index for index, row in enumerate(ROW_IDS)}
        lines = [
            HEADER,
            "| Row | Fault | Source | Detected | Recovered | During the fault | Data series |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        faults = {row.id: row.fault for row in ROWS}
        for outcome in sorted(self.outcomes, key=lambda o: (order[o.row], o.source)):
            cells = (
                outcome.row,
                faults[outcome.row],
                outcome.source,
                outcome.detected,
                outcome.recovered,
                outcome.during,
                outcome.data,
            )
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        missing = [row for row in ROW_IDS if row not in {o.row for o in self.outcomes}]
        if missing:
            lines += ["", "Not measured in this run: " + ", ".join(f"`{row}`" for row in missing) + "."]
        lines += ["", "## What each row expects", "", "| Row | Expected |", "| --- | --- |"]
        lines += [f"| {row.id} | {row.expected} |" for row in ROWS]
        return "\n".join(lines) + "\n"


def write_report(collector: Collector, environ: dict[str, str], path: Path = REPORT) -> bool:
    """Write the report when the environment asks for it (RELIABILITY_REPORT=1) and something was
    measured; a normal run leaves the committed file alone. Returns whether it wrote."""
    if environ.get(REPORT_VARIABLE) != "1" or not collector.outcomes:
        return False
    path.write_text(collector.render(), encoding="utf-8")
    return True


def seconds(value: float) -> str:
    return f"{value:.2f} s"


HEADER = """\
# Reliability: what the exporter shows when the world breaks

Generated by `tests/faults/` (`RELIABILITY_REPORT=1 .venv/bin/pytest tests/faults`); do not edit by hand.
Each row runs the simulator and an exporter with both sources (Lenses HQ with its live stream, one Confluent
Flink target listed two agents a page) over real HTTP on loopback, both polling every second, with the
fault switched on through the simulator's fault switches and off again. Rows the simulator cannot produce
(bodies that trickle, gzip bombs, listings cut off after hundreds of megabytes, redirects to another port)
run against a small hostile server instead (`tests/faults/hostile.py`), both sources polling every second
with `timeout` 1 s and `request_deadline` 3 s.

- **Detected**: seconds from the fault starting until `lenses_hq_exporter_up` showed it (0), or until the
  stream state changed; for faults that retry (connect, 5xx, 429, timeout) this includes the retries.
- **Recovered**: seconds from the fault clearing until `up` was 1 again with every series current. The
  bound asserted is one poll interval (1 s, +10 % jitter for Confluent) plus 1 s of grace; when a fault
  clears while a sync is waiting between retries, that wait (at most 2.5 s) comes on top. The live stream
  is open again within that bound too: a successful listing ends the stream's reconnect backoff.
- **During the fault**: `up`, the failure reasons counted on
  `lenses_hq_exporter_upstream_request_failures_total` (`endpoint:reason`), and the stream state from the
  landing page and `lenses_hq_exporter_sse_connected`.
- **Data series**: whether every `lenses_environment_*` / `confluent_flink_agent_*` series kept its last
  good value while the fault lasted.

Times are from one run on a two-core machine and vary between runs; the assertions are on the bounds.

A large valid listing, measured apart from the matrix (the exporter alone in its process, the upstream in
another, `max_body_bytes` raised to 300 MiB, `/healthz` probed every 50 ms): 200 MB of 74,294 environments
peaked at 620 MB resident and `/healthz` never took longer than 0.63 s (before the listing was decoded one
object at a time: 848 MB and 4.15 s). Eight listings of 300 MB cut off mid-body, one after the other: 621 MB
resident after recovery for 620 MB before (938 MB at the peak), so a failure leaves nothing behind.

## The matrix
"""
