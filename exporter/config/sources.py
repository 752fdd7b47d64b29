"""The sources' sections of the configuration file: `lenses` (one HQ, or `lenses.targets`) and
`confluent.targets`, with their filters, credentials and label allowlists."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from exporter.config.environment import confluent_credentials_from_environment
from exporter.config.reader import Section
from exporter.config.secrets import Secret
from exporter.config.settings import (
    DEADLINE_FACTOR,
    ROUNDTRIP_UNITS,
    TIERS,
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    ObjectFilter,
    Selection,
    TLSSettings,
    agent_label_name,
    metadata_label_name,
)
from exporter.config.values import IDENTIFIER, ConfigError, check_url, show, type_name, url_host

LENSES_FILTER_FIELDS = ("environment", "tier")
CONFLUENT_FILTER_FIELDS = ("agent", "kafka_cluster_id")
TLS_KEYS = ("ca_file", "insecure_skip_verify")
LENSES_KEYS = (
    "name",
    "url",
    "token",
    "token_file",
    "poll_interval",
    "sse",
    "kafka_connections",
    "metadata_labels",
    "roundtrip_duration_unit",
    "timeout",
    "tls",
    "sse_idle_timeout",
    "sse_max_event_bytes",
    "sse_unavailable_probe_interval",
    "max_body_bytes",
    "kafka_connections_concurrency",
    "include",
    "exclude",
    "request_deadline",
)
CONFLUENT_KEYS = ("targets", "concurrency")
TARGET_KEYS = (
    "name",
    "url",
    "organization_id",
    "environment_id",
    "api_key",
    "api_key_file",
    "api_secret",
    "api_secret_file",
    "token",
    "token_file",
    "tier",
    "poll_interval",
    "timeout",
    "tls",
    "page_size",
    "max_pages",
    "max_body_bytes",
    "proxy_url",
    "labels",
    "include",
    "exclude",
    "request_deadline",
)


def lenses_targets(root: Section, environ: Mapping[str, str]) -> tuple[list[LensesSettings], list[str]]:
    """`lenses.targets: [...]`, or the single form `lenses: {...}` as one target; names are unique. Also
    the fields holding a secret written in the file."""
    raw = root.raw("lenses")
    if not (isinstance(raw, dict) and "targets" in raw):
        section = root.section("lenses", LENSES_KEYS)
        return [_lenses(section, environ)], section.inline_secrets(("token",))
    for key in raw:
        if key != "targets" and key in LENSES_KEYS:
            raise ConfigError(f"lenses.{key}: with lenses.targets, set it on each target instead")
    outer = root.section("lenses", ("targets",))
    items = outer.items("targets")
    if not items:
        raise ConfigError(f"{outer.at('targets')}: expected at least one target")
    hqs: list[LensesSettings] = []
    inline: list[str] = []
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        section = Section(item, f"{outer.at('targets')}[{index}]", LENSES_KEYS, root.base)
        inline += section.inline_secrets(("token",))
        hq = _lenses(section, environ)
        _claim_name(names, hq.name, index, section, "lenses.targets", "; give each HQ its own name")
        hqs.append(hq)
    shared_labels(
        [hq.metadata_labels for hq in hqs], metadata_label_name, outer.at("targets"), "metadata_labels"
    )
    return hqs, inline


def shared_labels(
    lists: Sequence[Sequence[str]], label_name: Callable[[str], str], where: str = "", key: str = ""
) -> tuple[str, ...]:
    """The union of several targets' allowlists (the labels of their shared family), in order; two keys
    that become the same label name are refused."""
    keys: dict[str, str] = {}
    for index, allowlist in enumerate(lists):
        for position, name in enumerate(allowlist):
            label = label_name(name)
            other = keys.setdefault(label, name)
            if other != name:
                raise ConfigError(
                    f"{where}[{index}].{key}[{position}]: {show(name)} and {show(other)} (another target) "
                    f"both become the label {label}"
                )
    return tuple(keys.values())


def _pattern(section: Section, key: str) -> re.Pattern[str] | None:
    value = section.raw(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{section.at(key)}: expected a regular expression, got {type_name(value)}")
    try:
        return re.compile(value)
    except re.error as error:
        raise ConfigError(f"{section.at(key)}: bad regular expression {show(value)}: {error}") from None


def _selection(section: Section, fields: tuple[str, ...]) -> Selection:
    """`include` and `exclude`: regular expressions on `fields`, each matched against the whole value."""
    filters = []
    for key in ("include", "exclude"):
        part = section.section(key, fields)
        patterns = tuple((name, pattern) for name in fields if (pattern := _pattern(part, name)) is not None)
        filters.append(ObjectFilter(patterns))
    return Selection(*filters)


def _tls(section: Section) -> TLSSettings:
    return TLSSettings(
        ca_file=section.readable_path("ca_file"),
        insecure_skip_verify=section.boolean("insecure_skip_verify", TLSSettings.insecure_skip_verify),
    )


def _name(section: Section, fallback: str) -> str:
    """A source's `name`, `fallback` when it is not set; a blank one is refused."""
    name = section.string("name") or fallback
    if not name.strip():
        raise ConfigError(f"{section.at('name')}: empty")
    return name


def _lenses(section: Section, environ: Mapping[str, str]) -> LensesSettings:
    url = check_url(section.required("url"), section.at("url"))
    token = section.secret("token", "LENSES_HQ_TOKEN", environ)
    if token is None:
        raise ConfigError(
            f"{section.at('token')}: missing (set lenses.token, lenses.token_file or LENSES_HQ_TOKEN)"
        )
    name = _name(section, url_host(url))
    default = LensesSettings
    timeout = section.duration("timeout", default.timeout)
    return LensesSettings(
        name=name,
        url=url,
        token=token,
        poll_interval=section.duration("poll_interval", default.poll_interval),
        sse=section.boolean("sse", default.sse),
        kafka_connections=section.boolean("kafka_connections", default.kafka_connections),
        metadata_labels=_metadata_labels(section),
        roundtrip_duration_unit=section.choice(
            "roundtrip_duration_unit", tuple(ROUNDTRIP_UNITS), default.roundtrip_duration_unit
        ),
        timeout=timeout,
        request_deadline=_request_deadline(section, timeout),
        tls=_tls(section.section("tls", TLS_KEYS)),
        sse_idle_timeout=section.duration("sse_idle_timeout", default.sse_idle_timeout),
        sse_max_event_bytes=section.size("sse_max_event_bytes", default.sse_max_event_bytes),
        sse_unavailable_probe_interval=section.duration(
            "sse_unavailable_probe_interval", default.sse_unavailable_probe_interval
        ),
        max_body_bytes=section.size("max_body_bytes", default.max_body_bytes),
        kafka_connections_concurrency=section.integer(
            "kafka_connections_concurrency", default.kafka_connections_concurrency, 1, 256
        ),
        selection=_selection(section, LENSES_FILTER_FIELDS),
    )


def _metadata_labels(
    section: Section,
    key_name: str = "metadata_labels",
    label_name: Callable[[str], str] = metadata_label_name,
) -> tuple[str, ...]:
    keys: list[str] = []
    seen: dict[str, tuple[int, str]] = {}
    for index, key in enumerate(section.items(key_name)):
        where = f"{section.at(key_name)}[{index}]"
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{where}: expected a metadata key (a non-empty string), got {show(key)}")
        label = label_name(key)
        if label in seen:
            other_index, other = seen[label]
            raise ConfigError(
                f"{where}: {show(key)} and {show(other)} ({section.at(key_name)}[{other_index}]) "
                f"both become the label {label}"
            )
        seen[label] = (index, key)
        keys.append(key)
    return tuple(keys)


def confluent_targets(section: Section, environ: Mapping[str, str]) -> tuple[ConfluentSettings, list[str]]:
    """`confluent`: its targets (names unique) and concurrency, and the fields holding a secret written in
    the file."""
    targets: list[ConfluentTarget] = []
    inline: list[str] = []
    names: dict[str, int] = {}
    for index, item in enumerate(section.items("targets")):
        target_section = Section(item, f"{section.at('targets')}[{index}]", TARGET_KEYS, section.base)
        inline += target_section.inline_secrets(("api_key", "api_secret", "token"))
        target = _target(target_section, environ)
        _claim_name(names, target.name, index, target_section, "confluent.targets")
        targets.append(target)
    shared_labels([target.labels for target in targets], agent_label_name, section.at("targets"), "labels")
    concurrency = section.integer("concurrency", ConfluentSettings.concurrency, 1, 256)
    return ConfluentSettings(tuple(targets), concurrency), inline


def _identifier(section: Section, key: str, example: str) -> str:
    value = section.required(key).strip()
    if not IDENTIFIER.match(value):
        raise ConfigError(f"{section.at(key)}: expected an id like {example}, got {show(value)}")
    return value


def _target(section: Section, environ: Mapping[str, str]) -> ConfluentTarget:
    example = " (e.g. https://flink.us-east-1.aws.confluent.cloud)"
    url = check_url(section.required("url", example), section.at("url"))
    organization_id = _identifier(section, "organization_id", "7f5c1a2b-...")
    environment_id = _identifier(section, "environment_id", "env-abc123")
    api_key, api_secret, token = _credentials(section, environ)
    name = _name(section, environment_id)
    default = ConfluentTarget
    timeout = section.duration("timeout", default.timeout)
    return ConfluentTarget(
        name=name,
        url=url,
        organization_id=organization_id,
        environment_id=environment_id,
        api_key=api_key,
        api_secret=api_secret,
        token=token,
        tier=section.choice("tier", TIERS, default.tier),
        poll_interval=section.duration("poll_interval", default.poll_interval),
        timeout=timeout,
        request_deadline=_request_deadline(section, timeout),
        tls=_tls(section.section("tls", TLS_KEYS)),
        page_size=section.integer("page_size", default.page_size, 1, 100),
        max_pages=section.integer("max_pages", default.max_pages, 1),
        max_body_bytes=section.size("max_body_bytes", default.max_body_bytes),
        proxy_url=_proxy_url(section),
        labels=_metadata_labels(section, "labels", agent_label_name),
        selection=_selection(section, CONFLUENT_FILTER_FIELDS),
    )


def _request_deadline(section: Section, timeout: float) -> float:
    """The total deadline of one request: at least the per-read `timeout` it contains."""
    deadline = section.duration("request_deadline", DEADLINE_FACTOR * timeout)
    if deadline < timeout:
        raise ConfigError(
            f"{section.at('request_deadline')}: must be at least timeout ({timeout:g}s), got {deadline:g}s"
        )
    return deadline


def _proxy_url(section: Section) -> str:
    proxy = section.string("proxy_url")
    return check_url(proxy, section.at("proxy_url"), allow_credentials=True) if proxy else ""


def _credentials(
    section: Section, environ: Mapping[str, str]
) -> tuple[Secret | None, Secret | None, Secret | None]:
    """HTTP Basic (api_key + api_secret) or Bearer (token); from the target, else CONFLUENT_* variables."""
    api_key = section.secret("api_key", None, environ)
    api_secret = section.secret("api_secret", None, environ)
    token = section.secret("token", None, environ)
    if token is not None and (api_key is not None or api_secret is not None):
        raise ConfigError(f"{section.at('token')}: set either api_key/api_secret or token, not both")
    if api_key is not None and api_secret is None:
        raise ConfigError(f"{section.at('api_secret')}: missing (set api_secret or api_secret_file)")
    if api_secret is not None and api_key is None:
        raise ConfigError(f"{section.at('api_key')}: missing (set api_key or api_key_file)")
    if api_key is None and token is None:
        api_key, api_secret, token = confluent_credentials_from_environment(environ)
    if api_key is None and token is None:
        raise ConfigError(
            f"{section.at('api_key')}: missing credentials (set api_key and api_secret, their *_file forms, "
            "token or token_file, or CONFLUENT_API_KEY and CONFLUENT_API_SECRET)"
        )
    return api_key, api_secret, token


def _claim_name(
    names: dict[str, int], name: str, index: int, section: Section, targets: str, hint: str = ""
) -> None:
    """Record the target at `index` under `name`, refusing a name an earlier target of the list has."""
    if name in names:
        raise ConfigError(
            f"{section.at('name')}: duplicate target name {show(name)} (also {targets}[{names[name]}]{hint})"
        )
    names[name] = index
