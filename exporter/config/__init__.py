"""Typed settings, loaded from YAML (with ${VAR} expansion) or from the environment alone.

Every validation failure raises `ConfigError` whose message names the offending field, e.g.
`lenses.poll_interval: expected a duration like 30s, got 'soon'`. The package knows no upstream wing: what
it needs of them (the data families, for `metrics.allow` / `metrics.deny`) its caller passes in.

Modules: `settings` (the dataclasses, each default written once), `values` (checks of single values),
`reader` (the strict YAML loader and typed sections), `sources` (the `lenses` and `confluent` sections),
`loader` (the whole file), `environment` (the environment alone), `secrets` and `files`.
"""

from exporter.config.environment import NO_SOURCE
from exporter.config.loader import check_families, load_settings
from exporter.config.settings import (
    DEADLINE_FACTOR,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    LOG_FORMATS,
    LOG_LEVELS,
    ROUNDTRIP_UNITS,
    TIERS,
    ConfigWarning,
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    MetricsSettings,
    ObjectFilter,
    Selection,
    Settings,
    TLSSettings,
    WebSettings,
    agent_label_name,
    metadata_label_name,
)
from exporter.config.sources import CONFLUENT_FILTER_FIELDS, LENSES_FILTER_FIELDS, shared_labels
from exporter.config.values import (
    RESERVED_PATHS,
    ConfigError,
    check_listen_address,
    check_readable_file,
    check_telemetry_path,
    check_url,
    describe_secret,
    expand,
    file_path,
    format_duration,
    normal_log_level,
    parse_duration,
    split_listen_address,
    url_host,
)

__all__ = [
    "CONFLUENT_FILTER_FIELDS",
    "DEADLINE_FACTOR",
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_TELEMETRY_PATH",
    "LENSES_FILTER_FIELDS",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "NO_SOURCE",
    "RESERVED_PATHS",
    "ROUNDTRIP_UNITS",
    "TIERS",
    "ConfigError",
    "ConfigWarning",
    "ConfluentSettings",
    "ConfluentTarget",
    "LensesSettings",
    "MetricsSettings",
    "ObjectFilter",
    "Selection",
    "Settings",
    "TLSSettings",
    "WebSettings",
    "agent_label_name",
    "check_families",
    "check_listen_address",
    "check_readable_file",
    "check_telemetry_path",
    "check_url",
    "describe_secret",
    "expand",
    "file_path",
    "format_duration",
    "load_settings",
    "metadata_label_name",
    "normal_log_level",
    "parse_duration",
    "shared_labels",
    "split_listen_address",
    "url_host",
]
