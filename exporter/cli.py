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
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    Selection,
    Settings,
    WebSettings,
    check_families,
    check_listen_address,
    check_readable_file,
    check_telemetry_path,
    check_url,
    describe_secret,
    format_duration,
    load_settings,
    normal_log_level,
)
from exporter.config.secrets import Secret
from exporter.confluent.metrics import FAMILY_NAMES as CONFLUENT_FAMILIES
from exporter.healthcheck import (
    ADDRESS_FILE_VARIABLE,
    address_file_from,
    local_url,
    read_address_file,
    remove_address_file,
    write_address_file,
)
from exporter.healthcheck import probe as probe_health
from exporter.lenses.metrics import FAMILY_NAMES as LENSES_FAMILIES
from exporter.logs import configure_logging
from exporter.sharding import Shard
from exporter.upstream import Probe

if TYPE_CHECKING:
    from exporter.service import Exporter
    from exporter.simulator.options import SimulatorOptions

PROG = "lenses-hq-exporter"
COMMANDS = ("run", "demo", "simulate", "check", "mixin", "healthcheck")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

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
    _add_logging(run, "info", "json")
    _add_shard(run)
    _add_version(run)

    demo = commands.add_parser(
        "demo", help="run the bundled simulator and the exporter wired to it, in one process"
    )
    _add_listen(demo, ":9877")
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
        healthcheck, f"the address the running exporter wrote to ${ADDRESS_FILE_VARIABLE}, else :9877"
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
        "mixin": _mixin,
        "healthcheck": _healthcheck,
    }[arguments.command]
    try:
        return command(arguments)
    except (ConfigError, UsageError) as error:
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


def _announce(address_file: Path | None) -> Callable[[Exporter], None]:
    """What to do once the exporter listens: write the URL it serves on for the health check, if asked."""

    def started(exporter: Exporter) -> None:
        if address_file is not None:
            web = exporter.settings.web
            tls = exporter.web_config.ssl_context is not None
            try:
                write_address_file(address_file, local_url(web.listen_address, exporter.port, tls))
            except OSError as error:  # a read-only /tmp: the health check falls back to the flags it gets
                log.warning("address_file_not_written", path=str(address_file), error=error.strerror)

    return started


def _run(arguments: argparse.Namespace) -> int:
    from exporter.service import run_until_signal

    settings = settings_from_arguments(arguments, dict(os.environ))
    _configure(settings)
    log.info(
        "configuration_loaded",
        source=settings.source,
        lenses=",".join(hq.name for hq in settings.hqs) or None,
        confluent_targets=len(settings.confluent.targets),
        shard=settings.shard.index,
        total_shards=settings.shard.total,
    )
    address_file = address_file_from(os.environ)
    try:
        return _serve(lambda: run_until_signal(settings, on_started=_announce(address_file)))
    finally:
        if address_file is not None:
            remove_address_file(address_file)


# --- check ----------------------------------------------------------------------------------------------


def summary(settings: Settings) -> list[str]:
    """What `check` prints about a valid configuration: a heading, then one indented line per listener and
    target, no secret."""
    web = settings.web
    lines = [f"web: listen on {', '.join(web.listen_addresses)}, metrics at {web.telemetry_path}"]
    if web.config_file:
        lines[-1] += f", web config {web.config_file}"
    if settings.shard.total > 1:
        lines.append(f"shard: {settings.shard.index} of {settings.shard.total}")
    for lenses in settings.hqs:
        lines.append(
            f"lenses/{lenses.name}: {lenses.url}, token from {describe_secret(lenses.token)}, "
            f"re-list every {format_duration(lenses.poll_interval)}, "
            f"live stream {'on' if lenses.sse else 'off'}"
            + (", kafka connections on" if lenses.kafka_connections else "")
            + describe_selection(lenses.selection)
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
            + describe_selection(target.selection)
        )
    metrics = settings.metrics
    if metrics.allow or metrics.deny:
        lines.append(
            "metrics: "
            + ", ".join(
                f"{word} {' '.join(patterns)}"
                for word, patterns in (("allow", metrics.allow), ("deny", metrics.deny))
                if patterns
            )
        )
    return [f"configuration OK ({settings.source})", *(f"  {line}" for line in lines)]


def describe_selection(selection: Selection) -> str:
    """`, include tier=~production, exclude environment=~sandbox-.*` (empty without filters)."""
    parts = [
        f"{word} " + " ".join(f"{name}=~{pattern.pattern}" for name, pattern in part.patterns)
        for word, part in (("include", selection.include), ("exclude", selection.exclude))
        if part.patterns
    ]
    return "".join(f", {part}" for part in parts)


def printable(text: str) -> str:
    """Text from an upstream as one harmless line: anything a terminal would act on (newlines, escapes,
    bidirectional overrides) is shown as a `\\x`/`\\u` escape instead."""
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode("ascii")
        for character in text
    )


def probe_line(probe: Probe) -> str:
    """One line of `check --connect`: `lenses/hq: reachable (request id ...)`; on a refusal the upstream's
    own error type and title too. Everything from the upstream is made `printable`."""
    line = f"{probe.source}/{probe.target}: {probe.state}"
    if probe.detail and probe.state != "reachable":
        line += f": {printable(probe.detail)}"
    if probe.request_id:
        line += f" (request id {printable(probe.request_id)})"
    return line


async def probe_all(settings: Settings) -> list[Probe]:
    """Try every configured upstream once, concurrently."""
    from exporter.confluent import client as confluent_client
    from exporter.lenses import client as lenses_client

    calls: list[tuple[str, str, Awaitable[Probe]]] = []
    for hq in settings.hqs:
        calls.append(("lenses", hq.name, lenses_client.probe(hq)))
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
    settings = dataclasses.replace(settings, log_level=normal_log_level(arguments.log_level or "warning"))
    _configure(settings)
    from exporter.web.config import load_web_config

    load_web_config(settings.web.config_file)  # TLS files and basic-auth hashes are validated too
    for line in summary(settings):
        print(line)
    if not arguments.connect:
        return EXIT_OK
    probes = asyncio.run(probe_all(settings))
    for probe in probes:
        print(probe_line(probe), flush=True)
    return EXIT_OK if all(probe.state == "reachable" for probe in probes) else EXIT_FAILURE


# --- healthcheck ----------------------------------------------------------------------------------------


def _healthcheck(arguments: argparse.Namespace) -> int:
    from exporter.service import parse_listen_address
    from exporter.web.config import load_web_config

    environ = dict(os.environ)
    configure_logging("error", "logfmt")  # reading the web-config file logs at info
    configured = read_settings(arguments.config_file, environ).web if arguments.config_file else WebSettings()
    web = web_from_arguments(configured, arguments, environ)
    address_file = address_file_from(environ)
    url = read_address_file(address_file) if address_file and not arguments.listen_addresses else None
    if url is None:
        tls = load_web_config(web.config_file).ssl_context is not None
        url = local_url(web.listen_address, parse_listen_address(web.listen_address)[1], tls)
    credentials = None
    if arguments.username is not None or arguments.password_file is not None:
        if arguments.username is None or arguments.password_file is None:
            raise UsageError("--basic-auth.username: goes with --basic-auth.password-file (give both)")
        try:
            password = arguments.password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"--basic-auth.password-file: cannot read {arguments.password_file}") from None
        credentials = (arguments.username, password)
    path = "readyz" if arguments.ready else "healthz"
    outcome = probe_health(f"{url}/{path}", credentials=credentials, timeout=arguments.timeout)
    print(f"{'healthy' if outcome.healthy else 'unhealthy'}: {outcome.detail}", flush=True)
    return EXIT_OK if outcome.healthy else EXIT_FAILURE


# --- mixin ----------------------------------------------------------------------------------------------


def _mixin(arguments: argparse.Namespace) -> int:
    from exporter import mixin

    try:
        if arguments.runbook_url is not None:
            check_url(arguments.runbook_url, "--runbook-url")
        if arguments.mixin == "rules":
            changes: dict[str, str] = {}
            for item in arguments.thresholds:
                name, equals, value = item.partition("=")
                if not equals or not name.strip():
                    raise UsageError(f"--set: expected NAME=VALUE, got {item!r}")
                changes[name.strip()] = value.strip()
            settings = mixin.alert_settings(arguments.job_selector, changes, arguments.runbook_url)
            files = {mixin.RULE_FILE_NAME: mixin.render_rules(settings)}
        else:
            dashboard_settings = mixin.DashboardSettings(
                mixin.check_link_prefix(arguments.link_prefix, "--link-prefix"),
                arguments.runbook_url or mixin.DEFAULT_RUNBOOK_URL,
                mixin.check_cluster_label(arguments.cluster_label, "--cluster-label"),
            )
            files = mixin.render_dashboards(dashboard_settings)
    except (mixin.MixinError, UsageError) as error:
        return _fail(f"mixin {arguments.mixin}: {error}")
    if arguments.output == "-" and len(files) == 1:
        sys.stdout.write(next(iter(files.values())))
        return EXIT_OK
    directory = Path(arguments.output)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (directory / name).write_text(text, encoding="utf-8")
            print(directory / name)
    except OSError as error:
        return _fail(f"--output: cannot write {directory}: {error.strerror}")
    return EXIT_OK


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
    listen_addresses: Sequence[str],
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
        web=WebSettings(
            listen_address=listen_addresses[0], additional_listen_addresses=tuple(listen_addresses[1:])
        ),
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


async def run_demo(
    listen_addresses: Sequence[str], log_level: str, log_format: str, address_file: Path | None = None
) -> None:
    """Simulator and exporter in this process, until SIGTERM/SIGINT."""
    from exporter.service import run_until_signal
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
            listen_addresses,
            log_level,
            log_format,
        )

        def started(exporter: Exporter) -> None:
            _announce(address_file)(exporter)
            base = browse_url(listen_addresses[0], exporter.port)
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
    listen_addresses = arguments.listen_addresses or [":9877"]
    level, fmt = normal_log_level(arguments.log_level or "info"), arguments.log_format or "console"
    configure_logging(level, fmt)
    address_file = address_file_from(os.environ)
    try:
        return _serve(lambda: run_demo(listen_addresses, level, fmt, address_file))
    finally:
        if address_file is not None:
            remove_address_file(address_file)


def _simulate(arguments: argparse.Namespace) -> int:
    from exporter.simulator.options import options_from_arguments
    from exporter.simulator.server import serve_forever

    options, host, port = options_from_arguments(arguments)
    configure_logging(normal_log_level(arguments.log_level or "info"), arguments.log_format or "json")
    return _serve(lambda: serve_forever(options, host, port))
