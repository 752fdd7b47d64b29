"""The Helm chart (deploy/helm/lenses-hq-exporter), without a cluster and without a helm binary: Helm's own Go
SDK (through helm-python-sdk) lints it strictly and renders it with the default values and with each mode
and feature switched on; every rendered object is validated against the Kubernetes and Prometheus Operator
schemas, and the chart's rules and dashboards are the generators' for the same settings."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import generate
from exporter.config import load_settings
from exporter.mixin import DashboardSettings, alert_settings, render_dashboards, render_rules
from tests.deploy.test_kubernetes import (
    KUBERNETES_VERSIONS,
    OPERATOR_SCHEMAS,
    operator_validator,
    require_module,
)

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "lenses-hq-exporter"
RELEASE, NAMESPACE = "lenses-hq-exporter", "monitoring"
PROBE_PASSWORD_KEY = "probe-password"

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sharded": {"mode": "sharded", "replicas": 4},
    "web config with TLS and basic auth": {
        "webConfig": {
            "enabled": True,
            "existingSecret": "exporter-web",
            "config": {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}},
            "probe": {"username": "kubelet", "passwordKey": PROBE_PASSWORD_KEY},
        },
        "serviceMonitor": {
            "tlsConfig": {
                "ca": {"secret": {"name": "exporter-ca", "key": "ca.crt"}},
                "serverName": "exporter",
            },
            "basicAuth": {
                "username": {"name": "scrape-auth", "key": "username"},
                "password": {"name": "scrape-auth", "key": "password"},
            },
        },
    },
    "web config made by the chart": {
        "webConfig": {
            "enabled": True,
            "config": {"basic_auth_users": {"prometheus": "$2y$10$abcdefghijklmnopqrstuv"}},
        }
    },
    "existing secret with key mapping": {
        "existingSecret": {"name": "hq-credentials", "items": {"lenses-hq-token": "token"}}
    },
    "secrets made by the chart": {"secrets": {"lenses-hq-token": "not-a-real-token"}},
    "service monitor options": {
        "serviceMonitor": {
            "interval": "15s",
            "scrapeTimeout": "5s",
            "labels": {"release": "kube-prometheus-stack"},
            "honorLabels": False,
            "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
            "metricRelabelings": [
                {"action": "drop", "regex": "confluent_flink_agent_tool_info", "sourceLabels": ["__name__"]}
            ],
        }
    },
    "rules and dashboards options": {
        "prometheusRule": {
            "labels": {"release": "kube-prometheus-stack"},
            "jobSelector": 'job=~"lenses-.*", cluster="eu-1"',
            "runbookUrl": "https://wiki.example.com/runbooks/lenses-hq-exporter",
            "thresholds": {
                "agentDisconnectedFor": "15m",
                "agentRoundtripSeconds": 2.5,
                "rateLimitedRatio": 0.25,
            },
        },
        "dashboards": {
            "label": "grafana_dashboard",
            "labelValue": "lenses",
            "folder": "Kafka",
            "linkPrefix": "/grafana",
            "namespace": "grafana",
        },
    },
    "scheduling and extras": {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                    ]
                }
            }
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "priorityClassName": "monitoring",
        "podAnnotations": {"example.com/team": "platform"},
        "extraArgs": ["--log.level=debug"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
        "imagePullSecrets": [{"name": "registry"}],
        "image": {"digest": "sha256:" + "ab" * 32},
    },
    "network policy": {
        "networkPolicy": {
            "enabled": True,
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }
    },
    "operator objects off": {
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "dashboards": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
    },
}


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    helm_python = require_module("helm_python")
    with helm_python.Chart.load(str(CHART)) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the chart renders with these values."""
    files = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    return [
        document
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def kind(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [document for document in documents if document["kind"] == name]


def workload(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [d for d in documents if d["kind"] in ("Deployment", "StatefulSet")]
    return found


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = workload(documents)["spec"]["template"]["spec"]["containers"]
    return found


def test_lint_strict_is_clean() -> None:
    helm_python = require_module("helm_python")
    result = helm_python.lint(str(CHART), strict=True)
    assert result["errors"] == [] and result["messages"] == [], result
    for values in VARIANTS.values():
        result = helm_python.lint(str(CHART), copy.deepcopy(values), strict=True)
        assert result["errors"] == [] and result["messages"] == [], (values, result)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_object_validates(chart: Any, variant: str) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    documents = render(chart, VARIANTS[variant])
    assert workload(documents)
    for version in KUBERNETES_VERSIONS:
        version = kubernetes_validate.latest_version() if version == "latest" else version
        for document in documents:
            if document["apiVersion"].startswith("monitoring.coreos.com/"):
                continue
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = f"{document['kind']} {document['metadata']['name']} (Kubernetes {version})"
                pytest.fail(f"{where}: {error.message}")
    for document in documents:
        if document["kind"] in OPERATOR_SCHEMAS:
            errors = sorted(operator_validator(document["kind"]).iter_errors(document), key=str)
            assert not errors, "\n".join(f"{document['kind']}: {e.json_path}: {e.message}" for e in errors)


def test_the_values_schema_refuses_mistakes(chart: Any) -> None:
    helm_python = require_module("helm_python")
    for values in (
        {"mode": "active"},
        {"replicas": 0},
        {"prometheusRule": {"thresholds": {"agentDisconectedFor": "15m"}}},
        {"prometheusRule": {"thresholds": {"agentDisconnectedFor": "15 minutes"}}},
        {"serviceMonitor": {"intervall": "30s"}},
        {"dashboards": {"linkPrefix": "grafana"}},
    ):
        with pytest.raises(helm_python.HelmError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)


def groups(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    [rule] = kind(documents, "PrometheusRule")
    found: list[dict[str, Any]] = rule["spec"]["groups"]
    return found


def test_the_rules_are_the_generators_for_the_same_settings(chart: Any) -> None:
    assert groups(render(chart, {})) == yaml.safe_load(render_rules())["groups"]
    values = VARIANTS["rules and dashboards options"]["prometheusRule"]
    settings = alert_settings(
        values["jobSelector"],
        {"agent_disconnected_for": "15m", "agent_roundtrip_seconds": "2.5", "rate_limited_ratio": "0.25"},
        values["runbookUrl"],
    )
    expected = yaml.safe_load(render_rules(settings))["groups"]
    assert groups(render(chart, {"prometheusRule": values})) == expected
    assert expected != yaml.safe_load(render_rules())["groups"]


def test_every_threshold_is_a_value_of_the_chart(chart: Any) -> None:
    """Each threshold changed alone through the chart gives the generator's rules for that change."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    thresholds = schema["properties"]["prometheusRule"]["properties"]["thresholds"]["properties"]
    settings_names = {
        "".join(part if i == 0 else part.title() for i, part in enumerate(name.split("_"))): name
        for name in alert_settings().__dataclass_fields__
    }
    for value_name, spec in thresholds.items():
        if spec["type"] == "number":
            changed: Any = spec["default"] * 2 + 1
        elif "pattern" in spec:
            changed = "17m"
        else:
            changed = "critical-tier"
        rendered = groups(render(chart, {"prometheusRule": {"thresholds": {value_name: changed}}}))
        expected = render_rules(alert_settings(changes={settings_names[value_name]: str(changed)}))
        assert rendered == yaml.safe_load(expected)["groups"], value_name


def test_dashboards_are_the_generators_for_the_same_settings(chart: Any) -> None:
    def shipped(documents: list[dict[str, Any]]) -> dict[str, str]:
        return {
            name: text
            for d in kind(documents, "ConfigMap")
            for name, text in d["data"].items()
            if name.endswith(".json")
        }

    assert shipped(render(chart, {})) == render_dashboards()
    documents = render(chart, VARIANTS["rules and dashboards options"])
    options = VARIANTS["rules and dashboards options"]
    expected = render_dashboards(
        DashboardSettings(options["dashboards"]["linkPrefix"], options["prometheusRule"]["runbookUrl"])
    )
    assert shipped(documents) == expected
    for document in kind(documents, "ConfigMap"):
        if any(name.endswith(".json") for name in document["data"]):
            assert document["metadata"]["labels"]["grafana_dashboard"] == "lenses"
            assert document["metadata"]["annotations"]["grafana_folder"] == "Kafka"
            assert document["metadata"]["namespace"] == "grafana"


def test_generated_parts_are_up_to_date() -> None:
    for path, text in generate.chart_outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run `python -m deploy.generate`"
        )


def test_service_monitor_honours_the_exporters_labels_by_default(chart: Any) -> None:
    [monitor] = kind(render(chart, {}), "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True, "environment and tier collide with common target labels"
    assert endpoint["scheme"] == "http" and endpoint["path"] == "/metrics"
    [tls] = kind(render(chart, VARIANTS["web config with TLS and basic auth"]), "ServiceMonitor")
    assert tls["spec"]["endpoints"][0]["scheme"] == "https"
    assert tls["spec"]["endpoints"][0]["basicAuth"]["password"] == {"name": "scrape-auth", "key": "password"}


def test_the_job_the_monitor_makes_is_the_one_the_rules_select(chart: Any) -> None:
    documents = render(chart, {})
    [service], [monitor] = kind(documents, "Service"), kind(documents, "ServiceMonitor")
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert f'job="{job}"' in yaml.safe_dump(groups(documents))
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert (
        service["spec"]["selector"].items()
        <= workload(documents)["spec"]["template"]["metadata"]["labels"].items()
    )


def test_a_config_change_rolls_the_pods(chart: Any) -> None:
    def annotations(values: dict[str, Any]) -> dict[str, str]:
        found: dict[str, str] = workload(render(chart, values))["spec"]["template"]["metadata"]["annotations"]
        return found

    before = annotations({})
    changed = copy.deepcopy(yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["config"])
    changed["lenses"]["poll_interval"] = "45s"
    assert annotations({"config": changed})["checksum/config"] != before["checksum/config"]


def test_the_config_map_loads_with_the_secret_files(chart: Any, tmp_path: Path) -> None:
    """The default config reads its token from the secret folder the pod mounts, from the key mapped."""
    documents = render(chart, VARIANTS["existing secret with key mapping"])
    [config_map] = [d for d in kind(documents, "ConfigMap") if "config.yml" in d["data"]]
    pod = workload(documents)["spec"]["template"]["spec"]
    [secret_volume] = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert secret_volume["secret"] == {
        "secretName": "hq-credentials",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "lenses-hq-token"}],
    }
    mounts = {mount["name"]: mount["mountPath"] for mount in container(documents)["volumeMounts"]}
    (tmp_path / "lenses-hq-token").write_text("hq-token-from-the-secret\n")
    text = config_map["data"]["config.yml"].replace(mounts["secrets"], str(tmp_path))
    (tmp_path / "config.yml").write_text(text)
    settings = load_settings(tmp_path / "config.yml", environ={})
    assert settings.lenses is not None and settings.lenses.token.get() == "hq-token-from-the-secret"
    assert f"--config.file={mounts['config']}/config.yml" in container(documents)["args"]


def test_sharded_mode_numbers_pods_by_index_and_counts_replicas(chart: Any) -> None:
    documents = render(chart, VARIANTS["sharded"])
    assert not kind(documents, "Deployment")
    [statefulset] = kind(documents, "StatefulSet")
    args = container(documents)["args"]
    assert "--shard=$(SHARD)" in args and f"--total-shards={statefulset['spec']['replicas']}" in args
    [shard] = [variable for variable in container(documents)["env"] if variable["name"] == "SHARD"]
    assert shard["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_probes_still_work_with_basic_auth_on(chart: Any) -> None:
    plain = container(render(chart, {}))
    assert plain["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert plain["readinessProbe"]["httpGet"]["path"] == "/readyz"
    secured = container(render(chart, VARIANTS["web config with TLS and basic auth"]))
    assert "--web.config.file=/etc/lenses-hq-exporter/web/web.yml" in secured["args"]
    liveness = secured["livenessProbe"]["exec"]["command"]
    readiness = secured["readinessProbe"]["exec"]["command"]
    assert liveness[:2] == ["lenses-hq-exporter", "healthcheck"]
    assert "--ready" in readiness and "--basic-auth.username=kubelet" in readiness
    assert f"--basic-auth.password-file=/etc/lenses-hq-exporter/web/{PROBE_PASSWORD_KEY}" in readiness
    for probe in (liveness, readiness):
        assert "--web.config.file=/etc/lenses-hq-exporter/web/web.yml" in probe
        assert "--web.listen-address=127.0.0.1:9877" in probe


def test_a_config_with_two_hqs_and_filters_renders_and_loads(chart: Any, tmp_path: Path) -> None:
    # Helm merges maps: the chart's single-form defaults are set to null to leave only `targets`.
    defaults = {key: None for key in ("name", "url", "token_file", "poll_interval", "sse")}
    config = {
        "lenses": {
            **defaults,
            "targets": [
                {
                    "name": name,
                    "url": f"https://{name}.example.com/api",
                    "token_file": f"/etc/lenses-hq-exporter/secrets/{name}-token",
                    "include": {"tier": "production"},
                }
                for name in ("hq-eu", "hq-us")
            ],
        },
        "metrics": {"deny": ["lenses_environment_agent_capability"]},
    }
    documents = render(chart, {"config": config})
    [config_map] = [d for d in kind(documents, "ConfigMap") if "config.yml" in d["data"]]
    for name in ("hq-eu", "hq-us"):
        (tmp_path / f"{name}-token").write_text(f"{name}-secret\n")
    text = config_map["data"]["config.yml"].replace("/etc/lenses-hq-exporter/secrets", str(tmp_path))
    (tmp_path / "config.yml").write_text(text)
    settings = load_settings(tmp_path / "config.yml", environ={})
    assert [(hq.name, hq.token.get()) for hq in settings.hqs] == [
        ("hq-eu", "hq-eu-secret"),
        ("hq-us", "hq-us-secret"),
    ]
    assert not settings.metrics.keeps("lenses_environment_agent_capability")
