"""The command line: `run` (the default), `demo`, `simulate`, `check`, `mixin` and `healthcheck`.

Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 2 for a bad configuration or usage (one line on
stderr naming the field), 1 for anything else. The grammar is in `exporter.arguments`; `check` and `demo`
have modules of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from exporter import signals
from exporter.arguments import (
    PROG,
    UsageError,
    parse_arguments,
    read_settings,
    settings_from_arguments,
    web_from_arguments,
)
from exporter.config import (
    ConfigError,
    Settings,
    WebSettings,
    check_url,
    normal_log_level,
    split_listen_address,
)
from exporter.healthcheck import (
    address_file_from,
    local_url,
    read_address_file,
    remove_address_file,
    write_address_file,
)
from exporter.healthcheck import probe as probe_health
from exporter.logs import configure_logging

if TYPE_CHECKING:
    from exporter.service import Exporter

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = structlog.get_logger("exporter.cli")

# --- entry point ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lenses-hq-exporter` and `python -m exporter`; returns the exit code."""
    signals.install_early()  # SIGTERM exits 0 until the event loop takes it over (see `serve`)
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


def configure(settings: Settings) -> None:
    """Logging as the settings ask (secrets redacted), then the configuration's warnings."""
    configure_logging(settings.log_level, settings.log_format, settings.secret_values)
    for warning in settings.warnings:
        log.warning(warning.event, **warning.fields)


def serve(work: Callable[[], Awaitable[None]]) -> int:
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


def announce(address_file: Path | None) -> Callable[[Exporter], None]:
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
    configure(settings)
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
        return serve(lambda: run_until_signal(settings, on_started=announce(address_file)))
    finally:
        if address_file is not None:
            remove_address_file(address_file)


# --- healthcheck ----------------------------------------------------------------------------------------


def _healthcheck(arguments: argparse.Namespace) -> int:
    from exporter.web.config import load_web_config

    environ = dict(os.environ)
    configure_logging("error", "logfmt")  # reading the web-config file logs at info
    configured = read_settings(arguments.config_file, environ).web if arguments.config_file else WebSettings()
    web = web_from_arguments(configured, arguments, environ)
    address_file = address_file_from(environ)
    url = read_address_file(address_file) if address_file and not arguments.listen_addresses else None
    if url is None:
        tls = load_web_config(web.config_file).ssl_context is not None
        url = local_url(web.listen_address, split_listen_address(web.listen_address)[1], tls)
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


def _check(arguments: argparse.Namespace) -> int:
    from exporter.check import check

    return check(arguments)


def _demo(arguments: argparse.Namespace) -> int:
    from exporter.demo import demo

    return demo(arguments)


# --- simulate -------------------------------------------------------------------------------------------


def _simulate(arguments: argparse.Namespace) -> int:
    from exporter.simulator.options import options_from_arguments
    from exporter.simulator.server import serve_forever

    options, host, port = options_from_arguments(arguments)
    configure_logging(normal_log_level(arguments.log_level or "info"), arguments.log_format or "json")
    return serve(lambda: serve_forever(options, host, port))
