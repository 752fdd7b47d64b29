"""`load_settings`: the configuration file (YAML, `${VAR}` expanded, read strictly) or, without one, the
environment alone; and `check_families`, which the caller that knows the data families runs on
`metrics.allow` / `metrics.deny`."""

from __future__ import annotations

import difflib
import fnmatch
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from exporter.config.environment import NO_SOURCE, settings_from_environment
from exporter.config.files import UnreadableFile
from exporter.config.reader import Section, YAMLProblem, expand_tree, parse_yaml, read_text
from exporter.config.settings import (
    LOG_FORMATS,
    LOG_LEVELS,
    ConfigWarning,
    LensesSettings,
    MetricsSettings,
    Settings,
    WebSettings,
)
from exporter.config.sources import CONFLUENT_KEYS, confluent_targets, lenses_targets
from exporter.config.values import (
    ConfigError,
    check_listen_address,
    check_telemetry_path,
    normal_log_level,
    show,
    type_name,
)

TOP_KEYS = ("web", "lenses", "confluent", "log", "metrics")
METRICS_KEYS = ("allow", "deny")
WEB_KEYS = ("listen_address", "config_file", "telemetry_path")
LOG_KEYS = ("level", "format")


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from a YAML file (with `${VAR}` expansion), or from the environment alone when `path` is
    None. Raises ConfigError with a one-line message naming the field."""
    environ = os.environ if environ is None else environ
    if path is None:
        return settings_from_environment(environ)
    try:
        text, mode = read_text(path)
    except UnreadableFile as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.reason}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    try:
        try:
            document = parse_yaml(text)
        except YAMLProblem as error:
            raise ConfigError(f"{path}: invalid YAML{error.location}: {error.problem}") from None
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type_name(document)}")
        document = expand_tree(document, environ, "")
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply (or a YAML alias contains itself)") from None
    root = Section(document, "", TOP_KEYS, path.parent)
    inline: list[str] = []
    web = _web(root.section("web", WEB_KEYS))
    log_section = root.section("log", LOG_KEYS)
    log_level = normal_log_level(log_section.choice("level", LOG_LEVELS, Settings.log_level))
    log_format = log_section.choice("format", LOG_FORMATS, Settings.log_format)
    hqs: list[LensesSettings] = []
    if root.raw("lenses") is not None:
        hqs, inline_lenses = lenses_targets(root, environ)
        inline += inline_lenses
    confluent, inline_confluent = confluent_targets(root.section("confluent", CONFLUENT_KEYS), environ)
    inline += inline_confluent
    if not hqs and not confluent.targets:
        raise ConfigError(NO_SOURCE)
    metrics = _metrics(root.section("metrics", METRICS_KEYS))
    warnings: list[ConfigWarning] = []
    if inline and mode & stat.S_IROTH:
        warnings.append(
            ConfigWarning(
                "config_secrets_world_readable",
                {
                    "path": str(path),
                    "fields": inline,
                    "hint": "chmod o-r the file, or use *_file or ${VAR} for secrets",
                },
            )
        )
    return Settings(
        web=web,
        lenses=hqs[0] if hqs else None,
        lenses_targets=tuple(hqs) if len(hqs) > 1 else (),
        confluent=confluent,
        metrics=metrics,
        log_level=log_level,
        log_format=log_format,
        source=str(path),
        warnings=tuple(warnings),
    )


def _web(section: Section) -> WebSettings:
    where = section.at("listen_address")
    if isinstance(section.raw("listen_address"), list):
        addresses = section.items("listen_address")
        if not addresses:
            raise ConfigError(f"{where}: expected at least one HOST:PORT")
        for index, address in enumerate(addresses):
            if not isinstance(address, str):
                raise ConfigError(f"{where}[{index}]: expected a string, got {type_name(address)}")
            check_listen_address(address, f"{where}[{index}]")
    else:
        address = section.string("listen_address", WebSettings.listen_address)
        addresses = [check_listen_address(address, where)]
    path = section.string("telemetry_path", WebSettings.telemetry_path)
    return WebSettings(
        listen_address=addresses[0],
        additional_listen_addresses=tuple(addresses[1:]),
        config_file=section.readable_path("config_file"),
        telemetry_path=check_telemetry_path(path, section.at("telemetry_path")),
    )


def _metrics(section: Section) -> MetricsSettings:
    """`metrics.allow` / `metrics.deny`: names or globs of data families (checked against the families by
    `check_families`)."""
    lists: list[tuple[str, ...]] = []
    for key in METRICS_KEYS:
        patterns: list[str] = []
        for index, pattern in enumerate(section.items(key)):
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigError(
                    f"{section.at(key)}[{index}]: expected a family name or glob, got {show(pattern)}"
                )
            patterns.append(pattern)
        lists.append(tuple(patterns))
    return MetricsSettings(*lists)


def check_families(metrics: MetricsSettings, families: Sequence[str]) -> None:
    """Raise ConfigError naming the field (`metrics.deny[1]`) when a name or glob of `metrics.allow` or
    `metrics.deny` matches none of `families`, the data families the exporter has."""
    for key, patterns in zip(METRICS_KEYS, (metrics.allow, metrics.deny), strict=True):
        for index, pattern in enumerate(patterns):
            if not any(fnmatch.fnmatchcase(family, pattern) for family in families):
                hint = difflib.get_close_matches(pattern, families, n=1)
                suffix = f" (did you mean {hint[0]}?)" if hint else " (see docs/metrics.md for the families)"
                kind = "glob matches no family" if any(c in pattern for c in "*?[") else "unknown family"
                raise ConfigError(f"metrics.{key}[{index}]: {kind} {show(pattern)}{suffix}")
