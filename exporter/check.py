"""`lenses-hq-exporter check`: the configuration summed up without a secret, the web-config file
validated, and with `--connect` one request to each upstream, a line per target."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from collections.abc import Awaitable

from exporter.arguments import settings_from_arguments
from exporter.cli import EXIT_FAILURE, EXIT_OK, configure
from exporter.config import Selection, Settings, describe_secret, format_duration, normal_log_level
from exporter.probe import Probe
from exporter.web.config import load_web_config


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


def check(arguments: argparse.Namespace) -> int:
    """Run `check`; the exit code: 0 when valid (and every upstream reachable with --connect)."""
    settings = settings_from_arguments(arguments, dict(os.environ))
    settings = dataclasses.replace(settings, log_level=normal_log_level(arguments.log_level or "warning"))
    configure(settings)
    load_web_config(settings.web.config_file)  # TLS files and basic-auth hashes are validated too
    for line in summary(settings):
        print(line)
    if not arguments.connect:
        return EXIT_OK
    probes = asyncio.run(probe_all(settings))
    for probe in probes:
        print(probe_line(probe), flush=True)
    return EXIT_OK if all(probe.state == "reachable" for probe in probes) else EXIT_FAILURE
