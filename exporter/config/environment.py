"""The configuration from the environment alone (the quick start, no file): LENSES_HQ_* for one HQ,
CONFLUENT_* for Flink targets; settings not named by a variable keep their defaults."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from exporter.config.secrets import Secret
from exporter.config.settings import ConfluentSettings, ConfluentTarget, LensesSettings, Settings
from exporter.config.values import IDENTIFIER, ConfigError, check_url, environment_secret, show, url_host

NO_SOURCE = (
    "no source configured: set lenses.url or confluent.targets in the config file, "
    "or LENSES_HQ_URL / CONFLUENT_FLINK_URL in the environment"
)


def settings_from_environment(environ: Mapping[str, str]) -> Settings:
    """The settings the environment's variables describe; raises ConfigError naming the variable."""
    lenses = None
    url = environ.get("LENSES_HQ_URL", "").strip()
    if url:
        url = check_url(url, "LENSES_HQ_URL")
        token = environment_secret(environ, "LENSES_HQ_TOKEN")
        if token is None:
            raise ConfigError(
                "LENSES_HQ_TOKEN: missing (required with LENSES_HQ_URL; or LENSES_HQ_TOKEN_FILE)"
            )
        lenses = LensesSettings(name=url_host(url), url=url, token=token)
    targets: list[ConfluentTarget] = []
    flink_url = environ.get("CONFLUENT_FLINK_URL", "").strip()
    if flink_url:
        flink_url = check_url(flink_url, "CONFLUENT_FLINK_URL")
        organization_id = environ.get("CONFLUENT_ORGANIZATION_ID", "").strip()
        if not organization_id:
            raise ConfigError("CONFLUENT_ORGANIZATION_ID: missing (required with CONFLUENT_FLINK_URL)")
        if not IDENTIFIER.match(organization_id):
            raise ConfigError(f"CONFLUENT_ORGANIZATION_ID: expected a uuid, got {show(organization_id)}")
        environment_ids = list(_split_ids(environ.get("CONFLUENT_ENVIRONMENT_IDS", "")))
        if not environment_ids:
            raise ConfigError(
                "CONFLUENT_ENVIRONMENT_IDS: missing (comma-separated, required with CONFLUENT_FLINK_URL)"
            )
        api_key, api_secret, token = confluent_credentials_from_environment(environ)
        if api_key is None and token is None:
            raise ConfigError(
                "CONFLUENT_API_KEY: missing "
                "(set CONFLUENT_API_KEY and CONFLUENT_API_SECRET, or CONFLUENT_TOKEN)"
            )
        targets = [
            ConfluentTarget(
                name=environment_id,
                url=flink_url,
                organization_id=organization_id,
                environment_id=environment_id,
                api_key=api_key,
                api_secret=api_secret,
                token=token,
            )
            for environment_id in environment_ids
        ]
    if lenses is None and not targets:
        raise ConfigError(NO_SOURCE)
    return Settings(lenses=lenses, confluent=ConfluentSettings(tuple(targets)), source="environment")


def confluent_credentials_from_environment(
    environ: Mapping[str, str],
) -> tuple[Secret | None, Secret | None, Secret | None]:
    """(api_key, api_secret, token) from CONFLUENT_API_KEY + CONFLUENT_API_SECRET, else CONFLUENT_TOKEN
    (each also as a `*_FILE`); all None when none is set."""
    api_key = environment_secret(environ, "CONFLUENT_API_KEY")
    api_secret = environment_secret(environ, "CONFLUENT_API_SECRET")
    if api_key is not None and api_secret is None:
        raise ConfigError("CONFLUENT_API_SECRET: missing (required with CONFLUENT_API_KEY)")
    if api_secret is not None and api_key is None:
        raise ConfigError("CONFLUENT_API_KEY: missing (required with CONFLUENT_API_SECRET)")
    if api_key is not None:
        return api_key, api_secret, None
    return None, None, environment_secret(environ, "CONFLUENT_TOKEN")


def _split_ids(text: str) -> Iterator[str]:
    seen: set[str] = set()
    for part in text.split(","):
        environment_id = part.strip()
        if not environment_id:
            continue
        if not IDENTIFIER.match(environment_id):
            raise ConfigError(
                f"CONFLUENT_ENVIRONMENT_IDS: expected ids like env-abc123, got {show(environment_id)}"
            )
        if environment_id in seen:
            raise ConfigError(f"CONFLUENT_ENVIRONMENT_IDS: {environment_id} is listed twice")
        seen.add(environment_id)
        yield environment_id
