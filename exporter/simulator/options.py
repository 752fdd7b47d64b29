"""The simulator's settings: the seeded world's size, credentials, churn, and the fault switches it starts
with; plus the command-line flags of `lenses-hq-exporter simulate` that fill them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DEFAULT_LISTEN = "127.0.0.1:9991"

LINE_ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


@dataclass
class SimulatorOptions:
    """Everything a simulator is built from. Fault fields here are only the starting values of `Faults`."""

    environments: int = 24
    agents: int = 24
    seed: int = 1
    lenses_token: str = "sim-hq-token"
    confluent_api_key: str = "sim-key"
    confluent_api_secret: str = "sim-secret"
    confluent_token: str | None = "sim-oauth-token"
    confluent_environments: int = 2
    kafka_clusters_per_environment: int = 3
    churn: bool = False
    churn_interval: float = 2.0
    updates_per_second: float = 0.0
    keepalive_interval: float = 15.0
    sse_retry_ms: int = 5000
    # Confluent's token bucket, per credential: a burst of `rate_limit_capacity` requests, refilled at
    # `rate_limit_per_second`. Generous by default: tests and a 10,000-agent listing never meet it.
    rate_limit_capacity: float = 10_000.0
    rate_limit_per_second: float = 1_000.0
    # Fault switches (all off by default).
    latency: float = 0.0
    error_rate: float = 0.0
    rate_limited_rate: float = 0.0
    rate_limited_headers: bool = True
    sse_enabled: bool = True
    sse_drop_interval: float = 0.0
    malformed_rate: float = 0.0
    schema_drift: bool = False
    sse_line_ending: str = "\n"
    sse_multiline_data: bool = False
    sse_garbage: bool = False
    sse_unknown_events: bool = False
    sse_flood_per_second: float = 0.0


def _listen_address(value: str) -> tuple[str, int]:
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {value!r}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value!r}")
    return number


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `simulate`: where to listen, the world's size and seed, churn, and fault switches."""
    defaults = SimulatorOptions()
    world = parser.add_argument_group("world")
    world.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        type=_listen_address,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    world.add_argument(
        "--environments", type=int, default=defaults.environments, help="number of Lenses HQ environments"
    )
    world.add_argument(
        "--agents",
        type=int,
        default=defaults.agents,
        help="number of Confluent Flink agents, spread over the Confluent environments",
    )
    world.add_argument(
        "--confluent-environments",
        type=int,
        default=defaults.confluent_environments,
        help="number of Confluent environment ids",
    )
    world.add_argument("--seed", type=int, default=defaults.seed, help="seed of the generated world")
    world.add_argument(
        "--churn",
        action=argparse.BooleanOptionalAction,
        default=defaults.churn,
        help="change the world in the background (metrics drift, agents come and go)",
    )
    world.add_argument(
        "--churn-interval",
        type=_non_negative,
        default=defaults.churn_interval,
        help="seconds between churn steps",
    )
    world.add_argument(
        "--updates-per-second",
        type=_non_negative,
        default=defaults.updates_per_second,
        help="environment updates generated per second (SSE environment_updated events)",
    )
    world.add_argument(
        "--keepalive-interval",
        type=_non_negative,
        default=defaults.keepalive_interval,
        help="seconds between SSE keepalive comments",
    )
    world.add_argument(
        "--lenses-token",
        default=defaults.lenses_token,
        help="the bearer token Lenses HQ accepts (a fake credential)",
    )
    world.add_argument("--confluent-api-key", default=defaults.confluent_api_key)
    world.add_argument("--confluent-api-secret", default=defaults.confluent_api_secret)
    world.add_argument(
        "--confluent-token",
        default=defaults.confluent_token,
        help="the bearer token Confluent accepts besides the API key",
    )
    world.add_argument(
        "--rate-limit",
        type=_non_negative,
        default=defaults.rate_limit_capacity,
        help="Confluent token bucket size per credential",
    )
    world.add_argument(
        "--rate-limit-per-second",
        type=_non_negative,
        default=defaults.rate_limit_per_second,
        help="Confluent token bucket refill rate",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency", type=_non_negative, default=0.0, help="seconds added to every response")
    faults.add_argument("--error-rate", type=_fraction, default=0.0, help="fraction of requests answered 5xx")
    faults.add_argument(
        "--rate-limited-rate", type=_fraction, default=0.0, help="fraction of requests answered 429"
    )
    faults.add_argument(
        "--rate-limited-without-headers",
        action="store_true",
        help="send those 429s without Retry-After and X-RateLimit-* headers",
    )
    faults.add_argument("--no-sse", action="store_true", help="the SSE stream answers 404")
    faults.add_argument(
        "--sse-drop-every",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="close every SSE connection after this many seconds",
    )
    faults.add_argument(
        "--malformed-rate",
        type=_fraction,
        default=0.0,
        help="fraction of bodies and SSE events that are malformed",
    )
    faults.add_argument(
        "--schema-drift",
        action="store_true",
        help="serve objects with nulls, wrong types, missing blocks, huge and negative numbers",
    )
    faults.add_argument("--sse-line-ending", choices=sorted(LINE_ENDINGS), default="lf")
    faults.add_argument(
        "--sse-multiline-data", action="store_true", help="spread each event's JSON over several data: lines"
    )
    faults.add_argument("--sse-garbage", action="store_true", help="garbage lines before every SSE event")
    faults.add_argument(
        "--sse-unknown-events", action="store_true", help="an event of an unknown name after every SSE event"
    )
    faults.add_argument(
        "--sse-flood",
        type=_non_negative,
        default=0.0,
        metavar="PER_SECOND",
        help="extra environment_updated events per second",
    )


def options_from_arguments(namespace: argparse.Namespace) -> tuple[SimulatorOptions, str, int]:
    """The options, host and port that the parsed flags of `add_simulator_arguments` describe."""
    host, port = namespace.listen
    options = SimulatorOptions(
        environments=namespace.environments,
        agents=namespace.agents,
        seed=namespace.seed,
        lenses_token=namespace.lenses_token,
        confluent_api_key=namespace.confluent_api_key,
        confluent_api_secret=namespace.confluent_api_secret,
        confluent_token=namespace.confluent_token or None,
        confluent_environments=namespace.confluent_environments,
        churn=namespace.churn,
        churn_interval=namespace.churn_interval,
        updates_per_second=namespace.updates_per_second,
        keepalive_interval=namespace.keepalive_interval,
        rate_limit_capacity=namespace.rate_limit,
        rate_limit_per_second=namespace.rate_limit_per_second,
        latency=namespace.latency,
        error_rate=namespace.error_rate,
        rate_limited_rate=namespace.rate_limited_rate,
        rate_limited_headers=not namespace.rate_limited_without_headers,
        sse_enabled=not namespace.no_sse,
        sse_drop_interval=namespace.sse_drop_every,
        malformed_rate=namespace.malformed_rate,
        schema_drift=namespace.schema_drift,
        sse_line_ending=LINE_ENDINGS[namespace.sse_line_ending],
        sse_multiline_data=namespace.sse_multiline_data,
        sse_garbage=namespace.sse_garbage,
        sse_unknown_events=namespace.sse_unknown_events,
        sse_flood_per_second=namespace.sse_flood,
    )
    return options, host, port
