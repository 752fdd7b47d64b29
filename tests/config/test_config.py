"""The configuration loader: defaults, the environment-only quick start, ${VAR} expansion, secrets, and
validation messages that name the field."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from exporter.arguments import read_settings
from exporter.config import (
    DEADLINE_FACTOR,
    ConfigError,
    ConfluentSettings,
    ConfluentTarget,
    LensesSettings,
    MetricsSettings,
    Settings,
    WebSettings,
    format_duration,
    load_settings,
    parse_duration,
)

TOKEN = "hq-token-7d1e9a"


def write(directory: Path, text: str, name: str = "config.yml", mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    path.chmod(mode)
    return path


def load(directory: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    """The settings as the command line reads them: the file, and its family lists checked."""
    return read_settings(write(directory, text), environ or {})


def error_of(directory: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(directory, text, environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


LENSES = f"""
lenses:
  url: http://hq.example.com:9991/api/
  token: {TOKEN}
"""

TARGET = """
confluent:
  targets:
    - url: https://flink.us-east-1.aws.confluent.cloud/
      organization_id: 7f5c1a2b-0000-4000-8000-000000000001
      environment_id: env-abc123
      api_key: key-1234
      api_secret: secret-5678
"""


def test_defaults_of_a_minimal_lenses_file(tmp_path: Path) -> None:
    settings = load(tmp_path, LENSES)
    assert settings.web.listen_address == ":9877"
    assert settings.web.config_file is None
    lenses = settings.lenses
    assert lenses is not None
    assert lenses.name == "hq.example.com"
    assert lenses.url == "http://hq.example.com:9991/api"
    assert lenses.token.get() == TOKEN
    assert (lenses.poll_interval, lenses.timeout, lenses.sse, lenses.kafka_connections) == (
        30.0,
        10.0,
        True,
        False,
    )
    assert lenses.roundtrip_duration_unit == "ns"
    assert lenses.metadata_labels == ()
    assert settings.confluent.targets == ()
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.source == str(tmp_path / "config.yml")


def test_defaults_of_a_confluent_target(tmp_path: Path) -> None:
    settings = load(tmp_path, TARGET)
    assert settings.lenses is None
    (target,) = settings.confluent.targets
    assert target.name == "env-abc123"
    assert target.url == "https://flink.us-east-1.aws.confluent.cloud"
    assert target.organization_id == "7f5c1a2b-0000-4000-8000-000000000001"
    assert target.api_key is not None and target.api_key.get() == "key-1234"
    assert target.api_secret is not None and target.api_secret.get() == "secret-5678"
    assert target.token is None
    assert (target.poll_interval, target.page_size, target.tier) == (60.0, 100, "")


def test_every_key_is_read(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here")
    (tmp_path / "web.yml").write_text("{}")
    settings = load(
        tmp_path,
        f"""
        web: {{listen_address: "127.0.0.1:9100", config_file: web.yml}}
        log: {{level: debug, format: console}}
        lenses:
          name: hq
          url: https://hq.example.com
          token: {TOKEN}
          poll_interval: 1h30m
          sse: false
          kafka_connections: true
          metadata_labels: [team, region]
          roundtrip_duration_unit: ms
          timeout: 500ms
          tls: {{ca_file: ca.pem, insecure_skip_verify: true}}
          sse_idle_timeout: 1m
          sse_max_event_bytes: 1MiB
          sse_unavailable_probe_interval: 5m
          max_body_bytes: 1000
          kafka_connections_concurrency: 3
        confluent:
          concurrency: 2
          targets:
            - name: prod-flink
              url: https://flink.us-east-1.aws.confluent.cloud
              organization_id: org-1
              environment_id: env-1
              token: bearer-token-1
              tier: production
              poll_interval: 2m
              timeout: 5s
              page_size: 50
              max_pages: 10
              max_body_bytes: 2MB
              proxy_url: http://exporter:proxy-pass-41@proxy.corp:3128
        """,
    )
    assert settings.web.listen_address == "127.0.0.1:9100"
    assert settings.web.config_file == tmp_path / "web.yml"
    assert (settings.log_level, settings.log_format) == ("debug", "console")
    lenses = settings.lenses
    assert lenses is not None
    assert (lenses.name, lenses.poll_interval, lenses.sse, lenses.kafka_connections) == (
        "hq",
        5400.0,
        False,
        True,
    )
    assert lenses.metadata_labels == ("team", "region")
    assert (lenses.roundtrip_duration_unit, lenses.timeout) == ("ms", 0.5)
    assert lenses.tls.ca_file == tmp_path / "ca.pem" and lenses.tls.insecure_skip_verify
    assert (lenses.sse_idle_timeout, lenses.sse_max_event_bytes) == (60.0, 1024 * 1024)
    assert (lenses.sse_unavailable_probe_interval, lenses.max_body_bytes) == (300.0, 1000)
    assert lenses.kafka_connections_concurrency == 3
    assert settings.confluent.concurrency == 2
    (target,) = settings.confluent.targets
    assert (target.name, target.tier, target.poll_interval, target.timeout) == (
        "prod-flink",
        "production",
        120.0,
        5.0,
    )
    assert target.token is not None and target.token.get() == "bearer-token-1"
    assert target.api_key is None and target.api_secret is None
    assert (target.page_size, target.max_pages, target.max_body_bytes) == (50, 10, 2_000_000)
    assert target.proxy_url == "http://exporter:proxy-pass-41@proxy.corp:3128"
    assert "proxy-pass-41" in settings.secret_values()  # redacted from logs like the other secrets


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1d", 86400),
        ("1m30s500ms", 90.5),
        ("2w", 1209600),
    ],
)
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "30", "", "5 m", "1s1m", "-5s", "1.5s", "m"])
def test_malformed_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5400, 60, 0.5, 45)] == ["1h30m", "1m", "500ms", "45s"]


# --- environment only -----------------------------------------------------------------------------------


def test_environment_only(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "LENSES_HQ_URL": "http://hq:9991/api/",
            "LENSES_HQ_TOKEN": TOKEN,
            "CONFLUENT_FLINK_URL": "https://flink.eu-west-1.aws.confluent.cloud",
            "CONFLUENT_ORGANIZATION_ID": "7f5c1a2b-0000-4000-8000-000000000001",
            "CONFLUENT_ENVIRONMENT_IDS": " env-a, env-b ,",
            "CONFLUENT_API_KEY": "key-1234",
            "CONFLUENT_API_SECRET": "secret-5678",
        },
    )
    assert settings.source == "environment"
    assert settings.lenses is not None
    assert (settings.lenses.name, settings.lenses.url) == ("hq", "http://hq:9991/api")
    assert settings.lenses.token.get() == TOKEN
    assert [t.name for t in settings.confluent.targets] == ["env-a", "env-b"]
    assert [t.environment_id for t in settings.confluent.targets] == ["env-a", "env-b"]
    for target in settings.confluent.targets:
        assert target.url == "https://flink.eu-west-1.aws.confluent.cloud"
        assert target.api_key is not None and target.api_key.get() == "key-1234"
        assert target.api_secret is not None and target.api_secret.get() == "secret-5678"


def test_environment_only_with_a_bearer_token_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("oauth-token-1\n")
    settings = load_settings(
        None,
        {
            "CONFLUENT_FLINK_URL": "https://flink.eu-west-1.aws.confluent.cloud",
            "CONFLUENT_ORGANIZATION_ID": "org-1",
            "CONFLUENT_ENVIRONMENT_IDS": "env-a",
            "CONFLUENT_TOKEN_FILE": str(tmp_path / "token"),
        },
    )
    assert settings.lenses is None
    (target,) = settings.confluent.targets
    assert target.token is not None and target.token.get() == "oauth-token-1"
    assert target.api_key is None


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({}, "no source configured"),
        ({"LENSES_HQ_URL": "http://hq"}, "LENSES_HQ_TOKEN: missing"),
        ({"LENSES_HQ_URL": "ftp://hq", "LENSES_HQ_TOKEN": TOKEN}, "LENSES_HQ_URL: not an http(s) URL"),
        ({"CONFLUENT_FLINK_URL": "https://f"}, "CONFLUENT_ORGANIZATION_ID: missing"),
        (
            {"CONFLUENT_FLINK_URL": "https://f", "CONFLUENT_ORGANIZATION_ID": "o"},
            "CONFLUENT_ENVIRONMENT_IDS: missing",
        ),
        (
            {
                "CONFLUENT_FLINK_URL": "https://f",
                "CONFLUENT_ORGANIZATION_ID": "o",
                "CONFLUENT_ENVIRONMENT_IDS": "e",
            },
            "CONFLUENT_API_KEY: missing",
        ),
        (
            {
                "CONFLUENT_FLINK_URL": "https://f",
                "CONFLUENT_ORGANIZATION_ID": "o",
                "CONFLUENT_ENVIRONMENT_IDS": "e",
                "CONFLUENT_API_KEY": "k",
            },
            "CONFLUENT_API_SECRET: missing",
        ),
    ],
)
def test_environment_only_errors_name_the_variable(environ: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("(", r"\(").replace(")", r"\)")):
        load_settings(None, environ)


# --- ${VAR} expansion -----------------------------------------------------------------------------------


def test_variables_are_expanded(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
        lenses:
          url: http://${HQ_HOST}:${HQ_PORT:-9991}/api
          token: ${HQ_TOKEN}
          name: cost-$$5
          sse: ${SSE}
          kafka_connections_concurrency: ${CONCURRENCY}
        """,
        {"HQ_HOST": "hq.internal", "HQ_TOKEN": TOKEN, "SSE": "false", "CONCURRENCY": "4"},
    )
    lenses = settings.lenses
    assert lenses is not None
    assert lenses.url == "http://hq.internal:9991/api"
    assert lenses.token.get() == TOKEN
    assert lenses.name == "cost-$5"
    assert lenses.sse is False
    assert lenses.kafka_connections_concurrency == 4


def test_an_undefined_variable_names_the_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, "lenses:\n  url: http://hq\n  token: ${NOT_SET_ANYWHERE}\n")
    assert message.startswith("lenses.token: ")
    assert "NOT_SET_ANYWHERE" in message


def test_an_undefined_variable_in_a_list_names_its_index(tmp_path: Path) -> None:
    message = error_of(tmp_path, TARGET.replace("env-abc123", "${ENV_ID}"))
    assert message.startswith("confluent.targets[0].environment_id: ")


# --- secrets --------------------------------------------------------------------------------------------


def test_token_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hq").write_text(TOKEN + "\n")
    settings = load(tmp_path, "lenses:\n  url: http://hq\n  token_file: secrets/hq\n")
    assert settings.lenses is not None
    assert settings.lenses.token.file == tmp_path / "secrets" / "hq"
    assert settings.lenses.token.get() == TOKEN


def test_token_from_the_environment_when_the_file_has_none(tmp_path: Path) -> None:
    settings = load(tmp_path, "lenses:\n  url: http://hq\n", {"LENSES_HQ_TOKEN": TOKEN})
    assert settings.lenses is not None
    assert settings.lenses.token.get() == TOKEN
    assert settings.secret_values() == [TOKEN]


def test_confluent_credentials_from_files_and_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("key-from-file")
    (tmp_path / "secret").write_text("secret-from-file")
    text = TARGET.replace("api_key: key-1234", "api_key_file: key").replace(
        "api_secret: secret-5678", "api_secret_file: secret"
    )
    (target,) = load(tmp_path, text).confluent.targets
    assert target.api_key is not None and target.api_key.get() == "key-from-file"
    assert target.api_secret is not None and target.api_secret.get() == "secret-from-file"
    bare = "\n".join(line for line in TARGET.splitlines() if "api_" not in line)
    (target,) = load(
        tmp_path, bare, {"CONFLUENT_API_KEY": "env-key", "CONFLUENT_API_SECRET": "env-secret"}
    ).confluent.targets
    assert target.api_key is not None and target.api_key.get() == "env-key"
    assert target.api_secret is not None and target.api_secret.get() == "env-secret"


def test_a_token_file_is_read_again_after_it_is_rewritten(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token")
    settings = load(tmp_path, "lenses:\n  url: http://hq\n  token_file: token\n")
    assert settings.lenses is not None
    assert settings.lenses.token.get() == "first-token"
    replacement = tmp_path / "token.new"
    replacement.write_text("second-token\n")
    os.replace(replacement, token_file)
    assert settings.lenses.token.get() == "second-token"
    assert set(settings.secret_values()) == {"first-token", "second-token"}


def test_world_readable_file_with_inline_secrets_warns(tmp_path: Path) -> None:
    readable = load_settings(write(tmp_path, LENSES + TARGET, mode=0o644), {})
    (warning,) = readable.warnings
    assert warning.event == "config_secrets_world_readable"
    assert warning.fields["fields"] == [
        "lenses.token",
        "confluent.targets[0].api_key",
        "confluent.targets[0].api_secret",
    ]
    assert TOKEN not in str(warning.fields)
    private = load_settings(write(tmp_path, LENSES, mode=0o640), {})
    assert private.warnings == ()
    from_environment = load_settings(
        write(tmp_path, "lenses:\n  url: http://hq\n  token: ${T}\n", mode=0o644), {"T": TOKEN}
    )
    assert from_environment.warnings == ()


# --- validation -----------------------------------------------------------------------------------------

BAD = [
    ("lenses:\n  url: http://hq\n  token: abcd\n  pol_interval: 5s\n", "lenses.pol_interval: unknown key"),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  poll_interval: soon\n",
        "lenses.poll_interval: expected a duration like 30s, got 'soon'",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  poll_interval: 30\n",
        "lenses.poll_interval: expected a duration like 30s, got 30",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  poll_interval: 0s\n",
        "lenses.poll_interval: must be longer than 0s",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  sse: maybe\n",
        "lenses.sse: expected true or false, got 'maybe'",
    ),
    ("lenses:\n  url: 5\n  token: abcd\n", "lenses.url: expected a string, got a number 5"),
    ("lenses:\n  url: hq:9991\n  token: abcd\n", "lenses.url: not an http(s) URL: 'hq:9991'"),
    ("lenses:\n  token: abcd\n", "lenses.url: missing"),
    (
        "lenses:\n  url: http://hq\n",
        "lenses.token: missing (set lenses.token, lenses.token_file or LENSES_HQ_TOKEN)",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  token_file: t\n",
        "lenses.token: set either token or token_file",
    ),
    ("lenses:\n  url: http://hq\n  token_file: missing-file\n", "lenses.token_file: cannot read"),
    ("lenses:\n  url: http://hq\n  token_file: .\n", "lenses.token_file: cannot read"),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  roundtrip_duration_unit: min\n",
        "lenses.roundtrip_duration_unit: expected one of ns, us, ms, s, got 'min'",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  metadata_labels: [team-a, team_a]\n",
        "lenses.metadata_labels[1]: 'team_a' and 'team-a'",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  metadata_labels: team\n",
        "lenses.metadata_labels: expected a list, got a string",
    ),
    (
        "lenses:\n  url: http://hq\n  token: abcd\n  tls: {ca_file: nowhere.pem}\n",
        "lenses.tls.ca_file: cannot read",
    ),
    ("lenses: [1]\n", "lenses: expected a mapping, got a list"),
    ("- 1\n", "expected a mapping at the top level, got a list"),
    ("lenses:\n  url: http://hq\n  url: http://hq2\n", "duplicate key 'url'"),
    ("lenses:\n  url: 'http://hq\n", "invalid YAML at line"),
    ("web:\n  listen_address: 9877\n", "web.listen_address: expected a string"),
    (
        "web:\n  listen_address: localhost\n",
        "web.listen_address: expected HOST:PORT like :9877, got 'localhost'",
    ),
    ("log:\n  level: loud\n", "log.level: expected one of debug, info, warn, warning, error, got 'loud'"),
    ("confluent:\n  targets: {}\n", "confluent.targets: expected a list, got a mapping"),
    ("{}\n", "no source configured"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    BAD,
    ids=[expected.split(":")[0] + "-" + str(i) for i, (_, expected) in enumerate(BAD)],
)
def test_validation_messages_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def target_error(tmp_path: Path, replace: str, by: str, index: int = 0) -> str:
    targets = TARGET + TARGET.replace("confluent:\n  targets:\n", "").replace("env-abc123", "env-2")
    return error_of(tmp_path, _replace_nth(targets, replace, by, index))


def _replace_nth(text: str, old: str, new: str, index: int) -> str:
    parts = text.split(old)
    return old.join(parts[: index + 1]) + new + old.join(parts[index + 1 :])


def test_confluent_target_validation(tmp_path: Path) -> None:
    assert target_error(tmp_path, "https://flink.us-east-1.aws.confluent.cloud/", "ftp://x", 1).startswith(
        "confluent.targets[1].url: not an http(s) URL: 'ftp://x'"
    )
    assert target_error(tmp_path, "api_key: key-1234", "api_key: key-1234\n      tier: prod").startswith(
        "confluent.targets[0].tier: expected one of development, staging, production, got 'prod'"
    )
    assert target_error(tmp_path, "env-2", "env-abc123").startswith(
        "confluent.targets[1].name: duplicate target name 'env-abc123'"
    )
    assert target_error(tmp_path, "environment_id: env-abc123", "environment_id: env/../x").startswith(
        "confluent.targets[0].environment_id: expected an id like env-abc123"
    )
    assert target_error(tmp_path, "      api_secret: secret-5678\n", "", 1).startswith(
        "confluent.targets[1].api_secret: missing"
    )
    assert target_error(tmp_path, "api_key: key-1234", "api_key: key-1234\n      page_size: 101").startswith(
        "confluent.targets[0].page_size: must be between 1 and 100, got 101"
    )
    no_credentials = "\n".join(line for line in TARGET.splitlines() if "api_" not in line)
    assert error_of(tmp_path, no_credentials).startswith("confluent.targets[0].api_key: missing credentials")


def test_secret_values_never_appear_in_error_messages(tmp_path: Path) -> None:
    numeric = error_of(tmp_path, "lenses:\n  url: http://hq\n  token: 98765432\n")
    assert numeric.startswith("lenses.token: expected a string") and "98765432" not in numeric
    in_url = error_of(tmp_path, "lenses:\n  url: http://admin:pa55word@hq\n  token: abcd\n")
    assert in_url.startswith("lenses.url: credentials do not belong in the URL") and "pa55word" not in in_url
    malformed = error_of(tmp_path, "lenses:\n  url: http://hq\n  token: s3cr3t${oops\n")
    assert malformed.startswith("lenses.token: malformed") and "s3cr3t" not in malformed


def test_unreadable_config_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yml: cannot read the config file: No such file"):
        load_settings(tmp_path / "missing.yml", {})


def test_request_deadline_defaults_to_three_timeouts_and_is_read_per_source(tmp_path: Path) -> None:
    settings = load(
        tmp_path, LENSES + TARGET.replace("api_key: key-1234", "api_key: key-1234\n      timeout: 4s")
    )
    lenses = settings.lenses
    assert lenses is not None
    (target,) = settings.confluent.targets
    assert (lenses.deadline, target.deadline) == (30.0, 12.0)
    text = (
        LENSES
        + "  request_deadline: 45s\n"
        + TARGET.replace("api_key: key-1234", "api_key: key-1234\n      request_deadline: 20s")
    )
    settings = load(tmp_path, text)
    assert settings.lenses is not None and settings.lenses.deadline == 45.0
    assert settings.confluent.targets[0].deadline == 20.0


def test_request_deadline_shorter_than_the_timeout_names_the_field(tmp_path: Path) -> None:
    assert error_of(tmp_path, LENSES + "  timeout: 10s\n  request_deadline: 5s\n") == (
        "lenses.request_deadline: must be at least timeout (10s), got 5s"
    )
    assert error_of(tmp_path, LENSES + "  request_deadline: soon\n").startswith(
        "lenses.request_deadline: expected a duration like 30s"
    )
    assert target_error(
        tmp_path, "api_key: key-1234", "api_key: key-1234\n      request_deadline: 1s"
    ).startswith("confluent.targets[0].request_deadline: must be at least timeout (10s), got 1s")


def test_a_minimal_file_reads_to_the_settings_own_defaults(tmp_path: Path) -> None:
    """The reader takes each default from the settings dataclass: what a file leaves out is the field's
    default, for every field (the request deadline is resolved from the timeout)."""
    settings = load(tmp_path, LENSES + TARGET)
    (hq,) = settings.hqs
    assert hq == LensesSettings(
        name=hq.name, url=hq.url, token=hq.token, request_deadline=DEADLINE_FACTOR * LensesSettings.timeout
    )
    (target,) = settings.confluent.targets
    assert target == ConfluentTarget(
        name=target.name,
        url=target.url,
        organization_id=target.organization_id,
        environment_id=target.environment_id,
        api_key=target.api_key,
        api_secret=target.api_secret,
        request_deadline=DEADLINE_FACTOR * ConfluentTarget.timeout,
    )
    assert settings.confluent == ConfluentSettings(targets=(target,))
    assert (settings.web, settings.metrics) == (WebSettings(), MetricsSettings())
    assert (settings.log_level, settings.log_format) == (Settings.log_level, Settings.log_format)
