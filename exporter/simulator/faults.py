"""Fault switches of the simulator: what tests turn on to make the upstreams misbehave. Every switch is a
plain attribute (tests set them directly, subprocess tests through `/_admin/faults`); `clear()` turns every
fault off again."""

from __future__ import annotations

import fnmatch
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from exporter.simulator.options import SimulatorOptions

APIS = ("lenses", "confluent")
BODY_FAULTS = ("truncated", "not_json", "wrong_content_type")
LINE_ENDINGS = ("\n", "\r\n", "\r")
LAST_NEXT = ("absent", "empty", "null")  # how the last page of a listing says there is no next one


@dataclass
class ScriptedResponse:
    """A canned answer for matching requests, `count` times (None: until `Faults.clear()`).

    `api` is "lenses" or "confluent" (None: either); `path` an fnmatch pattern on the request path, Lenses
    paths taken without their `/api` prefix (`/v1/environments`); `page` the 1-based page of a listing (the
    Lenses list is always page 1). A `body` of None gives the API's usual error body for a status of 400 and
    over (Confluent's 429: empty), bytes and str are sent as they are, anything else as JSON. A header
    `X-Request-Id: ""` sends the answer without the request id header the simulator otherwise adds."""

    status: int
    api: str | None = None
    path: str | None = None
    page: int | None = None
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    content_type: str | None = None
    count: int | None = 1

    def matches(self, api: str, method: str, path: str, page: int | None) -> bool:
        """Whether a request is one this script answers."""
        return (
            (self.api is None or self.api == api)
            and (self.method is None or self.method.upper() == method)
            and (self.path is None or fnmatch.fnmatchcase(path, self.path))
            and (self.page is None or self.page == page)
        )


# Switches an `/_admin/faults` body may set, with the type each must have.
SWITCHES: dict[str, tuple[type, ...]] = {
    "latency": (int, float),
    "error_rate": (int, float),
    "rate_limited_rate": (int, float),
    "rate_limited_headers": (bool,),
    "random_api": (str, type(None)),
    "malformed_rate": (int, float),
    "body_fault": (str, type(None)),
    "body_fault_api": (str, type(None)),
    "schema_drift": (bool,),
    "sse_enabled": (bool,),
    "sse_drop_interval": (int, float),
    "sse_stall": (bool,),
    "sse_line_ending": (str,),
    "sse_multiline_data": (bool,),
    "sse_garbage": (bool,),
    "sse_unknown_events": (bool,),
    "sse_flood_per_second": (int, float),
    "confluent_repeat_token": (bool,),
    "confluent_redirect_to": (str, type(None)),
    "confluent_last_next": (str,),
    "lenses_token": (str,),
    "rate_limit_capacity": (int, float),
    "rate_limit_per_second": (int, float),
}


@dataclass
class Faults:
    """The switches. Rates are fractions of requests (0..1); `random_api` limits the random 5xx/429/malformed
    faults to one API. SSE switches act on open streams too. `confluent_last_next` chooses how a last page
    says so: no `next` key, `""` or `null`."""

    latency: float = 0.0
    error_rate: float = 0.0
    rate_limited_rate: float = 0.0
    rate_limited_headers: bool = True
    random_api: str | None = None
    malformed_rate: float = 0.0
    body_fault: str | None = None
    body_fault_api: str | None = None
    schema_drift: bool = False
    sse_enabled: bool = True
    sse_drop_interval: float = 0.0
    sse_stall: bool = False
    sse_line_ending: str = "\n"
    sse_multiline_data: bool = False
    sse_garbage: bool = False
    sse_unknown_events: bool = False
    sse_flood_per_second: float = 0.0
    sse_cut_next: bool = False
    confluent_repeat_token: bool = False
    confluent_redirect_to: str | None = None
    confluent_last_next: str = "absent"
    lenses_token: str = "sim-hq-token"
    rate_limit_capacity: float = 10_000.0
    rate_limit_per_second: float = 1_000.0
    scripts: list[ScriptedResponse] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0), repr=False, compare=False)
    options: SimulatorOptions = field(default_factory=SimulatorOptions, repr=False, compare=False)
    # Set by the server: sends raw bytes to every open SSE stream.
    sse_sender: Callable[[bytes], int] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_options(cls, options: SimulatorOptions) -> Faults:
        """The switches a simulator starts with."""
        faults = cls(options=options, rng=random.Random(f"faults-{options.seed}"))
        faults.clear()
        faults.latency = options.latency
        faults.error_rate = options.error_rate
        faults.rate_limited_rate = options.rate_limited_rate
        faults.rate_limited_headers = options.rate_limited_headers
        faults.sse_enabled = options.sse_enabled
        faults.sse_drop_interval = options.sse_drop_interval
        faults.malformed_rate = options.malformed_rate
        faults.schema_drift = options.schema_drift
        faults.sse_line_ending = options.sse_line_ending
        faults.sse_multiline_data = options.sse_multiline_data
        faults.sse_garbage = options.sse_garbage
        faults.sse_unknown_events = options.sse_unknown_events
        faults.sse_flood_per_second = options.sse_flood_per_second
        return faults

    def clear(self) -> None:
        """Every fault off, every script gone; the Lenses token and the rate limit back to the options'."""
        defaults = Faults()
        for spec in fields(self):
            if spec.name not in ("rng", "options", "sse_sender"):
                setattr(self, spec.name, getattr(defaults, spec.name))
        self.lenses_token = self.options.lenses_token
        self.rate_limit_capacity = self.options.rate_limit_capacity
        self.rate_limit_per_second = self.options.rate_limit_per_second

    def set(self, **switches: Any) -> None:
        """Set switches by name, checking names, types and values (the admin endpoint's entry point)."""
        for name, value in switches.items():
            kinds = SWITCHES.get(name)
            if kinds is None:
                raise ValueError(f"unknown fault switch {name!r}")
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"{name}: wrong type {type(value).__name__}")
            if name == "sse_line_ending" and value not in LINE_ENDINGS:
                raise ValueError("sse_line_ending must be one of \\n, \\r\\n, \\r")
            if name == "confluent_last_next" and value not in LAST_NEXT:
                raise ValueError(f"confluent_last_next must be one of {', '.join(LAST_NEXT)}")
            if name == "body_fault" and value is not None and value not in BODY_FAULTS:
                raise ValueError(f"body_fault must be one of {', '.join(BODY_FAULTS)}")
            if name in ("random_api", "body_fault_api") and value is not None and value not in APIS:
                raise ValueError(f"{name} must be one of {', '.join(APIS)}")
        for name, value in switches.items():
            setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        """The switches and scripts as JSON-able data."""
        state: dict[str, Any] = {name: getattr(self, name) for name in SWITCHES}
        state["sse_cut_next"] = self.sse_cut_next
        state["scripts"] = [
            {
                **asdict(script),
                "body": script.body
                if not isinstance(script.body, bytes)
                else script.body.decode(errors="replace"),
            }
            for script in self.scripts
        ]
        return state

    # ----- scripted responses -----------------------------------------------------------------------

    def script(self, status: int, **match: Any) -> ScriptedResponse:
        """Add a scripted response (see `ScriptedResponse` for the fields); returns it."""
        scripted = ScriptedResponse(status=status, **match)
        self.scripts.append(scripted)
        return scripted

    def take_script(self, api: str, method: str, path: str, page: int | None) -> ScriptedResponse | None:
        """The first script matching a request, counted down (and dropped when used up)."""
        for scripted in self.scripts:
            if scripted.matches(api, method, path, page):
                if scripted.count is not None:
                    scripted.count -= 1
                    if scripted.count <= 0:
                        self.scripts.remove(scripted)
                return scripted
        return None

    # ----- random faults ----------------------------------------------------------------------------

    def applies_to(self, api: str) -> bool:
        """Whether the random faults act on this API."""
        return self.random_api is None or self.random_api == api

    def roll(self, rate: float) -> bool:
        """True with probability `rate` (seeded, so a run can be repeated)."""
        return rate > 0 and self.rng.random() < rate

    def body_fault_for(self, api: str) -> str | None:
        """The body fault to apply to this JSON response, if any (the switch, else the malformed rate)."""
        if self.body_fault is not None and (self.body_fault_api is None or self.body_fault_api == api):
            return self.body_fault
        if self.applies_to(api) and self.roll(self.malformed_rate):
            return self.rng.choice(BODY_FAULTS)
        return None

    # ----- SSE one-shots ----------------------------------------------------------------------------

    def sse_cut_next_event(self) -> None:
        """The next event on the stream is cut in the middle and the connection dropped."""
        self.sse_cut_next = True

    def sse_inject(self, raw: bytes | str) -> int:
        """Send raw bytes (garbage, unknown events, anything) to every open stream; returns how many."""
        if self.sse_sender is None:
            return 0
        return self.sse_sender(raw.encode() if isinstance(raw, str) else raw)

    def sse_oversize_event(self, size: int, name: str = "oversize") -> int:
        """Send one `environment_updated` event whose data is a valid environment of about `size` bytes."""
        padding = "x" * max(0, size)
        data = (
            '{"name":"' + name + '","display_name":"' + name + '","lrn":"","id":"","created_at":'
            '"2025-06-01T00:00:00.000Z","tier":"development","status":{"agent_connected":false},'
            '"metadata":{"padding":"' + padding + '"}}'
        )
        return self.sse_inject(f"event: environment_updated\ndata: {data}\n\n")


# ----- schema drift ---------------------------------------------------------------------------------

KEPT_FIELDS = frozenset({"name"})


def drift(obj: Any, rng: random.Random, changes: int = 3) -> Any:
    """A copy of a JSON object with a few fields gone wrong: nulls, wrong types, missing blocks, huge and
    negative numbers, unknown additions. `name` stays, so the object can still be told apart."""
    result = json.loads(json.dumps(obj))
    if not isinstance(result, dict):
        return result
    for _ in range(changes):
        leaves = list(_paths(result))
        if not leaves:
            break
        path = rng.choice(leaves)
        parent = result
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        value = parent[key]
        mutation = rng.choice(("null", "wrong_type", "remove", "huge", "negative", "remove_block", "unknown"))
        if mutation == "null":
            parent[key] = None
        elif mutation == "wrong_type":
            parent[key] = (
                str(value) if not isinstance(value, str) else rng.choice((12345, True, ["x"], {"x": 1}))
            )
        elif mutation == "remove":
            del parent[key]
        elif mutation == "huge":
            parent[key] = rng.choice((10**30, 1.7e308, 2**64 + 1))
        elif mutation == "negative":
            parent[key] = (
                -abs(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1
            )
        elif mutation == "remove_block" and len(path) > 1:
            grandparent = result
            for step in path[:-2]:
                grandparent = grandparent[step]
            del grandparent[path[-2]]
        elif isinstance(parent, dict):
            parent["x_unknown_" + str(rng.randint(0, 999))] = {"nested": [1, "two", None]}
        else:
            parent.append({"unexpected": True})
    return result


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if not prefix and key in KEPT_FIELDS:
                continue
            if isinstance(item, dict | list) and item:
                yield from _paths(item, (*prefix, key))
            else:
                yield (*prefix, key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list) and item:
                yield from _paths(item, (*prefix, index))
            else:
                yield (*prefix, index)
