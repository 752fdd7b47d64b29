"""The command line: `run` (the default), `demo`, `simulate` and `check`.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 for a bad configuration or usage (one line on
stderr naming the field), 1 for anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import structlog

from exporter import __version__, signals
from exporter.config import (
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigError,
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    Settings,
    WebSettings,
    check_listen_address,
    describe_secret,
    format_duration,
    load_settings,
)
from exporter.logs import configure_logging
from exporter.secrets import Secret
from exporter.sharding import Shard
from exporter.upstream import Probe

if TYPE_CHECKING:
    from exporter.simulator.options import SimulatorOptions

PROG = "lenses-hq-exporter"
COMMANDS = ("run", "demo", "simulate", "check")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# Flags that take a separate value (`--config.file FILE`): the token after them is never a command.
VALUE_FLAGS = frozenset(
    {"--config.file", "--web.listen-address", "--log.level", "--log.format", "--shard", "--total-shards"}
)

log = structlog.get_logger("exporter.cli")


class UsageError(Exception):
    """A bad command line: the message names the flag. Exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`lenses-hq-exporter: <message>`), never the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# --- the command line -----------------------------------------------------------------------------------


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="YAML configuration; without it the environment alone configures the exporter "
        "(LENSES_HQ_URL, LENSES_HQ_TOKEN, CONFLUENT_FLINK_URL, ...)",
    )


def _add_listen(parser: argparse.ArgumentParser, default: str = "web.listen_address, else :9877") -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        help=f"address of /metrics (default: {default})",
    )


def _add_logging(parser: argparse.ArgumentParser, level: str, fmt: str) -> None:
    parser.add_argument(
        "--log.level", dest="log_level", choices=LOG_LEVELS, help=f"log level (default: {level})"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help=f"json lines, or console text for humans (default: {fmt})",
    )


def _add_shard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard", type=int, default=0, metavar="I", help="this replica's shard, 0 <= I < N (default 0)"
    )
    parser.add_argument(
        "--total-shards",
        dest="total_shards",
        type=int,
        default=1,
        metavar="N",
        help="number of replicas splitting the objects between them (default 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    from exporter.simulator.options import add_simulator_arguments

    parser = _Parser(
        prog=PROG,
        description="Prometheus exporter for Lenses HQ environments and Confluent Cloud Flink agents.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="run the exporter (the default command)")
    _add_config(run)
    _add_listen(run)
    _add_logging(run, "info", "json")
    _add_shard(run)

    demo = commands.add_parser(
        "demo", help="run the bundled simulator and the exporter wired to it, in one process"
    )
    _add_listen(demo, ":9877")
    _add_logging(demo, "info", "console")

    simulate = commands.add_parser("simulate", help="serve the Lenses HQ and Confluent Flink simulator alone")
    add_simulator_arguments(simulate)
    _add_logging(simulate, "info", "json")

    check = commands.add_parser(
        "check", help="validate the configuration; with --connect, try each upstream once"
    )
    _add_config(check)
    _add_listen(check)
    _add_logging(check, "warning", "json")
    _add_shard(check)
    check.add_argument("--connect", action="store_true", help="call each upstream once and report per target")
    return parser


def with_command(argv: Sequence[str]) -> list[str]:
    """`argv` with the command first: `run` when none is given, or moved to the front when it follows flags
    (`--log.level=debug demo`)."""
    argv = list(argv)
    previous = ""
    for index, token in enumerate(argv):
        if token in COMMANDS and previous not in VALUE_FLAGS:
            return [token, *argv[:index], *argv[index + 1 :]]
        if token == "--":
            break
        previous = token
    if argv and argv[0] in ("-h", "--help", "--version"):
        return argv
    return ["run", *argv]


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; raises UsageError with a one-line message."""
    arguments = build_parser().parse_args(with_command(argv))
    if hasattr(arguments, "total_shards"):
        if arguments.total_shards < 1:
            raise UsageError(f"--total-shards: must be at least 1, got {arguments.total_shards}")
        if not 0 <= arguments.shard < arguments.total_shards:
            raise UsageError(
                f"--shard: must be between 0 and {arguments.total_shards - 1} "
                f"(with --total-shards={arguments.total_shards}), got {arguments.shard}"
            )
    if getattr(arguments, "listen_address", None) is not None:
        try:
            check_listen_address(arguments.listen_address, "--web.listen-address")
        except ConfigError as error:
            raise UsageError(str(error)) from None
    return arguments


def settings_from_arguments(arguments: argparse.Namespace, environ: dict[str, str]) -> Settings:
    """The configuration file (or the environment), with the command line's overrides applied."""
    settings = load_settings(arguments.config_file, environ)
    web = settings.web
    if arguments.listen_address is not None:
        web = dataclasses.replace(web, listen_address=arguments.listen_address)
    return dataclasses.replace(
        settings,
        web=web,
        shard=Shard(arguments.shard, arguments.total_shards),
        log_level=arguments.log_level or settings.log_level,
        log_format=arguments.log_format or settings.log_format,
    )


# --- entry point ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lenses-hq-exporter` and `python -m exporter`; returns the exit code."""
    signals.install_early()  # SIGTERM exits 0 until the event loop takes it over (see `_serve`)
    try:
        arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        return _fail(str(error))
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    command: Callable[[argparse.Namespace], int] = {
        "run": _run,
        "demo": _demo,
        "simulate": _simulate,
        "check": _check,
    }[arguments.command]
    try:
        return command(arguments)
    except ConfigError as error:
        return _fail(str(error))


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _configure(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.secret_values)
    for warning in settings.warnings:
        log.warning(warning.event, **warning.fields)


def _serve(work: Callable[[], Awaitable[None]]) -> int:
    """Run `work` on a fresh event loop until it returns (on SIGTERM/SIGINT); map failures to exit codes."""
    # Until the loop installs its own handlers, SIGTERM stops the process as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    async def main() -> None:
        await work()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_OK
    except ConfigError:
        raise
    except OSError as error:
        log.error("startup_failed", error=f"{type(error).__name__}: {error}")
        return EXIT_FAILURE
    except Exception:
        log.exception("exporter_failed")
        return EXIT_FAILURE
    return EXIT_OK


def _run(arguments: argparse.Namespace) -> int:
    from exporter.service import run_until_signal

    settings = settings_from_arguments(arguments, dict(os.environ))
    _configure(settings)
    log.info(
        "configuration_loaded",
        source=settings.source,
        lenses=settings.lenses.name if settings.lenses else None,
        confluent_targets=len(settings.confluent.targets),
        shard=settings.shard.index,
        total_shards=settings.shard.total,
    )
    return _serve(lambda: run_until_signal(settings))


# --- check ----------------------------------------------------------------------------------------------


def summary(settings: Settings) -> list[str]:
    """What `check` prints about a valid configuration: a heading, then one indented line per listener and
    target, no secret."""
    lines = [f"web: listen on {settings.web.listen_address}"]
    if settings.web.config_file:
        lines[-1] += f", web config {settings.web.config_file}"
    if settings.shard.total > 1:
        lines.append(f"shard: {settings.shard.index} of {settings.shard.total}")
    lenses = settings.lenses
    if lenses is not None:
        lines.append(
            f"lenses/{lenses.name}: {lenses.url}, token from {describe_secret(lenses.token)}, "
            f"re-list every {format_duration(lenses.poll_interval)}, "
            f"live stream {'on' if lenses.sse else 'off'}"
            + (", kafka connections on" if lenses.kafka_connections else "")
        )
    for target in settings.confluent.targets:
        if target.token is not None:
            credentials = f"token from {describe_secret(target.token)}"
        else:
            credentials = (
                f"API key from {describe_secret(target.api_key)}, "
                f"secret from {describe_secret(target.api_secret)}"
            )
        lines.append(
            f"confluent/{target.name}: {target.url}, organization {target.organization_id}, "
            f"environment {target.environment_id}, {credentials}, "
            f"poll every {format_duration(target.poll_interval)}"
            + (f", tier {target.tier}" if target.tier else "")
        )
    return [f"configuration OK ({settings.source})", *(f"  {line}" for line in lines)]


def probe_line(probe: Probe) -> str:
    """One line of `check --connect`: `lenses/hq: reachable (request id ...)`."""
    line = f"{probe.source}/{probe.target}: {probe.state}"
    if probe.detail and probe.state != "reachable":
        line += f": {probe.detail}"
    if probe.request_id:
        line += f" (request id {probe.request_id})"
    return line


async def probe_all(settings: Settings) -> list[Probe]:
    """Try every configured upstream once, concurrently."""
    from exporter.confluent import client as confluent_client
    from exporter.lenses import client as lenses_client

    calls: list[tuple[str, str, Awaitable[Probe]]] = []
    if settings.lenses is not None:
        calls.append(("lenses", settings.lenses.name, lenses_client.probe(settings.lenses)))
    for target in settings.confluent.targets:
        calls.append(("confluent", target.name, confluent_client.probe(target)))
    results = await asyncio.gather(*(call for _, _, call in calls), return_exceptions=True)
    probes: list[Probe] = []
    for (source, name, _), result in zip(calls, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            probes.append(Probe(source, name, "error", type(result).__name__))
        else:
            probes.append(result)
    return probes


def _check(arguments: argparse.Namespace) -> int:
    settings = settings_from_arguments(arguments, dict(os.environ))
    settings = dataclasses.replace(settings, log_level=arguments.log_level or "warning")
    _configure(settings)
    from exporter.webconfig import load_web_config

    load_web_config(settings.web.config_file)  # TLS files and basic-auth hashes are validated too
    for line in summary(settings):
        print(line)
    if not arguments.connect:
        return EXIT_OK
    probes = asyncio.run(probe_all(settings))
    for probe in probes:
        print(probe_line(probe), flush=True)
    return EXIT_OK if all(probe.state == "reachable" for probe in probes) else EXIT_FAILURE


# --- demo and simulate ----------------------------------------------------------------------------------

DEMO_ENVIRONMENTS = 36
DEMO_AGENTS = 30
DEMO_CONFLUENT_ENVIRONMENTS = 2
DEMO_TIERS = ("production", "staging")


def demo_settings(
    simulator_url: str,
    organization_id: str,
    confluent_environment_ids: Sequence[str],
    options: SimulatorOptions,
    listen_address: str,
    log_level: str,
    log_format: str,
) -> Settings:
    """The exporter wired to a simulator: its Lenses HQ and one Confluent target per environment it serves,
    with the simulator's (fake) credentials. Short intervals, so that changes show within seconds."""
    lenses = LensesSettings(
        name="demo-hq",
        url=f"{simulator_url}/api",
        token=Secret(value=options.lenses_token, origin="the simulator"),
        poll_interval=15.0,
    )
    targets = tuple(
        ConfluentTarget(
            name=environment_id,
            url=simulator_url,
            organization_id=organization_id,
            environment_id=environment_id,
            api_key=Secret(value=options.confluent_api_key, origin="the simulator"),
            api_secret=Secret(value=options.confluent_api_secret, origin="the simulator"),
            tier=DEMO_TIERS[index % len(DEMO_TIERS)],
            poll_interval=10.0,
        )
        for index, environment_id in enumerate(confluent_environment_ids)
    )
    return Settings(
        web=WebSettings(listen_address=listen_address),
        lenses=lenses,
        confluent=ConfluentSettings(targets),
        log_level=log_level,
        log_format=log_format,
        source="demo",
    )


def browse_url(listen_address: str, port: int) -> str:
    """A URL a browser on this machine can open for a listen address (`:9877` → http://localhost:9877)."""
    host = listen_address.rpartition(":")[0].strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def run_demo(listen_address: str, log_level: str, log_format: str) -> None:
    """Simulator and exporter in this process, until SIGTERM/SIGINT."""
    from exporter.service import Exporter, run_until_signal
    from exporter.simulator.options import SimulatorOptions
    from exporter.simulator.server import Simulator

    options = SimulatorOptions(
        environments=DEMO_ENVIRONMENTS,
        agents=DEMO_AGENTS,
        confluent_environments=DEMO_CONFLUENT_ENVIRONMENTS,
        churn=True,
    )
    async with Simulator(options, host="127.0.0.1", port=0) as simulator:
        world = simulator.world
        settings = demo_settings(
            simulator.url,
            world.organization_id,
            world.confluent_environment_ids,
            options,
            listen_address,
            log_level,
            log_format,
        )

        def started(exporter: Exporter) -> None:
            base = browse_url(listen_address, exporter.port)
            print(
                f"\n{PROG} demo is running.\n"
                f"  exporter:   {base}/\n"
                f"  metrics:    {base}/metrics\n"
                f"  simulator:  {simulator.url}  (Lenses HQ at /api, Confluent Flink at /sql/v1)\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )

        await run_until_signal(settings, on_started=started)


def _demo(arguments: argparse.Namespace) -> int:
    listen_address = arguments.listen_address or ":9877"
    level, fmt = arguments.log_level or "info", arguments.log_format or "console"
    configure_logging(level, fmt)
    return _serve(lambda: run_demo(listen_address, level, fmt))


def _simulate(arguments: argparse.Namespace) -> int:
    from exporter.simulator.options import options_from_arguments
    from exporter.simulator.server import serve_forever

    options, host, port = options_from_arguments(arguments)
    configure_logging(arguments.log_level or "info", arguments.log_format or "json")
    return _serve(lambda: serve_forever(options, host, port))
