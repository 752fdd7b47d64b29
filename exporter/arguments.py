"""The command line's grammar: every command and flag, the command found wherever it stands, and the
settings a command line describes (the file or the environment, overridden by flags and their variables)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from exporter import __version__
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigError,
    Settings,
    WebSettings,
    check_families,
    check_listen_address,
    check_readable_file,
    check_telemetry_path,
    load_settings,
    normal_log_level,
)
from exporter.confluent.metrics import FAMILY_NAMES as CONFLUENT_FAMILIES
from exporter.healthcheck import ADDRESS_FILE_VARIABLE
from exporter.lenses.metrics import FAMILY_NAMES as LENSES_FAMILIES
from exporter.sharding import Shard

PROG = "lenses-hq-exporter"
COMMANDS = ("run", "demo", "simulate", "check", "mixin", "healthcheck")

# Flags that take a separate value (`--config.file FILE`): the token after them is never a command.
VALUE_FLAGS = frozenset(
    {
        "--config.file",
        "--web.listen-address",
        "--web.config.file",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "--shard",
        "--total-shards",
        "--basic-auth.username",
        "--basic-auth.password-file",
        "--timeout",
    }
)

# Environment variables standing in for flags where no file is used (containers, the quick start): the
# flag wins over its variable, the variable over the file.
FLAG_VARIABLES = {
    "--web.listen-address": "LENSES_HQ_EXPORTER_WEB_LISTEN_ADDRESS",  # comma-separated for several
    "--web.config.file": "LENSES_HQ_EXPORTER_WEB_CONFIG_FILE",
    "--web.telemetry-path": "LENSES_HQ_EXPORTER_WEB_TELEMETRY_PATH",
    "--log.level": "LENSES_HQ_EXPORTER_LOG_LEVEL",
    "--log.format": "LENSES_HQ_EXPORTER_LOG_FORMAT",
}


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


def _add_listen(
    parser: argparse.ArgumentParser, default: str = f"web.listen_address, else {DEFAULT_LISTEN_ADDRESS}"
) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen_addresses",
        action="append",
        metavar="HOST:PORT",
        help=f"address to serve on; repeat it to serve on several (default: {default})",
    )


def _add_web(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="exporter-toolkit web-config file: TLS, mTLS, basic auth (default: web.config_file)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        help="path of the metrics (default: web.telemetry_path, else /metrics)",
    )


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")


def _add_logging(parser: argparse.ArgumentParser, level: str, fmt: str) -> None:
    parser.add_argument(
        "--log.level", dest="log_level", choices=LOG_LEVELS, help=f"log level (default: {level})"
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=LOG_FORMATS,
        help=f"json lines, logfmt lines, or console text for humans (default: {fmt})",
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
    _add_version(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="run the exporter (the default command)")
    _add_config(run)
    _add_listen(run)
    _add_web(run)
    _add_logging(run, Settings.log_level, Settings.log_format)
    _add_shard(run)
    _add_version(run)

    demo = commands.add_parser(
        "demo", help="run the bundled simulator and the exporter wired to it, in one process"
    )
    _add_listen(demo, DEFAULT_LISTEN_ADDRESS)
    _add_logging(demo, "info", "console")
    _add_version(demo)

    simulate = commands.add_parser("simulate", help="serve the Lenses HQ and Confluent Flink simulator alone")
    add_simulator_arguments(simulate)
    _add_logging(simulate, "info", "json")
    _add_version(simulate)

    check = commands.add_parser(
        "check", help="validate the configuration; with --connect, try each upstream once"
    )
    _add_config(check)
    _add_listen(check)
    _add_web(check)
    _add_logging(check, "warning", "json")
    _add_shard(check)
    _add_version(check)
    check.add_argument("--connect", action="store_true", help="call each upstream once and report per target")
    _add_mixin(commands)

    healthcheck = commands.add_parser(
        "healthcheck",
        help="exit 0 when the exporter on this host answers /healthz (the image's and the chart's probe)",
    )
    _add_config(healthcheck)
    _add_listen(
        healthcheck,
        f"the address the running exporter wrote to ${ADDRESS_FILE_VARIABLE}, else {DEFAULT_LISTEN_ADDRESS}",
    )
    _add_web(healthcheck)
    healthcheck.add_argument("--ready", action="store_true", help="ask /readyz instead of /healthz")
    healthcheck.add_argument("--basic-auth.username", dest="username", metavar="USER", help="basic auth user")
    healthcheck.add_argument(
        "--basic-auth.password-file",
        dest="password_file",
        type=Path,
        metavar="FILE",
        help="file holding the basic auth password (without credentials, a 401 counts as serving)",
    )
    healthcheck.add_argument(
        "--timeout", type=float, default=4.0, metavar="SECONDS", help="give up after this long (default 4)"
    )
    _add_version(healthcheck)
    return parser


def _add_mixin(commands: argparse._SubParsersAction[_Parser]) -> None:
    mixin = commands.add_parser(
        "mixin", help="render the alert rules or the Grafana dashboards for this installation"
    )
    _add_version(mixin)
    kinds = mixin.add_subparsers(
        dest="mixin", metavar="rules|dashboards", parser_class=_Parser, required=True
    )
    runbook_help = (
        "where this installation hosts docs/runbook.md; each alert links to its section "
        "(default: the project's own copy)"
    )
    rules = kinds.add_parser("rules", help="the Prometheus alert rule file")
    rules.add_argument(
        "--job-selector",
        metavar="MATCHERS",
        help='label matchers selecting the exporter\'s scrape job (default: job="lenses-hq-exporter")',
    )
    rules.add_argument(
        "--set",
        dest="thresholds",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one threshold, e.g. agent_disconnected_for=15m (repeatable; names: docs/runbook.md)",
    )
    rules.add_argument("--runbook-url", metavar="URL", help=runbook_help)
    rules.add_argument(
        "--output", default=".", metavar="DIR", help="directory to write into, or - for stdout (default: .)"
    )
    dashboards = kinds.add_parser("dashboards", help="the Grafana dashboards (JSON), one file each")
    dashboards.add_argument(
        "--link-prefix",
        default="",
        metavar="PATH",
        help="the sub-path Grafana is served under (its root_url path, e.g. /grafana), for links between "
        "the dashboards (default: none)",
    )
    dashboards.add_argument("--runbook-url", metavar="URL", help=runbook_help)
    dashboards.add_argument(
        "--cluster-label",
        default="",
        metavar="LABEL",
        help="a label (e.g. cluster) every query selects and keeps, for one Prometheus over several "
        "clusters (default: none)",
    )
    dashboards.add_argument(
        "--output", default=".", metavar="DIR", help="directory to write into (default: .)"
    )


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
    try:
        for address in getattr(arguments, "listen_addresses", None) or ():
            check_listen_address(address, "--web.listen-address")
        if getattr(arguments, "telemetry_path", None) is not None:
            check_telemetry_path(arguments.telemetry_path, "--web.telemetry-path")
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return arguments


def _flag_or_variable(flag: str, value: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The flag's value, else its environment variable's (empty counts as unset), with where it came from."""
    if value is not None:
        return value, flag
    variable = FLAG_VARIABLES[flag]
    return environ.get(variable, "").strip() or None, variable


def _choice(value: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def read_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """`load_settings`, with `metrics.allow` / `metrics.deny` checked against the families the wings
    declare (the configuration package knows none)."""
    settings = load_settings(path, environ)
    check_families(settings.metrics, (*LENSES_FAMILIES, *CONFLUENT_FAMILIES))
    return settings


def settings_from_arguments(arguments: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """The configuration file (or the environment), with the command line's overrides applied: a flag wins
    over its environment variable, which wins over the file."""
    settings = read_settings(arguments.config_file, environ)
    log_level, where = _flag_or_variable("--log.level", arguments.log_level, environ)
    log_format, format_where = _flag_or_variable("--log.format", arguments.log_format, environ)
    return dataclasses.replace(
        settings,
        web=web_from_arguments(settings.web, arguments, environ),
        shard=Shard(arguments.shard, arguments.total_shards),
        log_level=normal_log_level(_choice(log_level, LOG_LEVELS, where))
        if log_level
        else settings.log_level,
        log_format=_choice(log_format, LOG_FORMATS, format_where) if log_format else settings.log_format,
    )


def web_from_arguments(
    web: WebSettings, arguments: argparse.Namespace, environ: Mapping[str, str]
) -> WebSettings:
    """`web` with the web flags (or their environment variables) applied."""
    flagged = arguments.listen_addresses
    addresses, where = _flag_or_variable("--web.listen-address", None, environ)
    listen = (
        list(flagged) if flagged else [part.strip() for part in (addresses or "").split(",") if part.strip()]
    )
    if listen:
        for address in listen:
            check_listen_address(address, "--web.listen-address" if flagged else where)
        web = dataclasses.replace(
            web, listen_address=listen[0], additional_listen_addresses=tuple(listen[1:])
        )
    config_file, where = _flag_or_variable(
        "--web.config.file", str(arguments.web_config_file) if arguments.web_config_file else None, environ
    )
    if config_file is not None:
        web = dataclasses.replace(web, config_file=check_readable_file(Path(config_file), where))
    telemetry_path, where = _flag_or_variable("--web.telemetry-path", arguments.telemetry_path, environ)
    if telemetry_path is not None:
        web = dataclasses.replace(web, telemetry_path=check_telemetry_path(telemetry_path, where))
    return web
