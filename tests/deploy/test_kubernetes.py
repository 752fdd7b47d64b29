"""The Kubernetes manifests (the HA base and the sharded variant): rendered by kustomize, validated against
the Kubernetes and Prometheus Operator schemas, hardened, consistent with each other, with the exporter's
config loader and with alerts/ and dashboards/ (which they are generated from)."""

from __future__ import annotations

import copy
import functools
import importlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import generate
from exporter.config import load_settings
from tests.support import IN_CI, require_binary


def require_module(name: str) -> Any:
    """The imported module; skips the test when it is missing, and fails it under CI=true."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed (test extras: pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
SHARDED = ROOT / "deploy" / "kubernetes-sharded"
SCHEMAS = ROOT / "deploy" / "schemas"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
# The oldest Kubernetes the base supports, and (as "latest") the newest the validator knows.
KUBERNETES_VERSIONS = ("1.29.0", "latest")
OPERATOR_SCHEMAS = {"ServiceMonitor": "servicemonitor-v1.json", "PrometheusRule": "prometheusrule-v1.json"}
CLIENT_SIDE_APPLY_LIMIT = 262144  # bytes: kubectl's last-applied annotation must fit in an annotation


@functools.cache
def kustomize(directory: Path) -> str:
    """`kubectl kustomize DIRECTORY` (once per directory per test run)."""
    kubectl = require_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    """The kustomization's objects, parsed afresh (callers may change them)."""
    return [document for document in yaml.safe_load_all(kustomize(directory)) if document]


@pytest.fixture(scope="module", params=[BASE, SHARDED], ids=lambda path: path.name)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Each kustomization, rendered: every test taking it runs for both."""
    directory: Path = request.param
    return render(directory)


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single object of this kind."""
    found = [document for document in documents if document["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workload(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The Deployment (HA base) or StatefulSet (sharded) running the exporter."""
    [found] = [document for document in documents if document["kind"] in ("Deployment", "StatefulSet")]
    return found


def config_map(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap holding the exporter's config.yml."""
    [found] = [d for d in documents if d["kind"] == "ConfigMap" and "config.yml" in d.get("data", {})]
    return found


def secret_example() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    return document


def operator_validator(kind: str) -> Any:
    jsonschema = require_module("jsonschema")
    schema = json.loads((SCHEMAS / OPERATOR_SCHEMAS[kind]).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def test_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    kinds = {document["kind"] for document in rendered}
    assert {"ConfigMap", "PodDisruptionBudget", "PrometheusRule", "Service", "ServiceMonitor"} <= kinds
    assert workload(rendered)["metadata"]["name"] == "lenses-hq-exporter"
    assert config_map(rendered)["metadata"]["name"].startswith("lenses-hq-exporter-config-")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_match_the_kubernetes_schemas(rendered: list[dict[str, Any]], version: str) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    if version == "latest":
        version = kubernetes_validate.latest_version()
    core = [d for d in rendered if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    for document in [*core, secret_example()]:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{document['kind']} {document['metadata']['name']} (Kubernetes {version}): {error.message}"
            )


def test_operator_objects_match_their_crd_schemas(rendered: list[dict[str, Any]]) -> None:
    operator = [d for d in rendered if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in operator} == set(OPERATOR_SCHEMAS)
    for document in operator:
        errors = sorted(operator_validator(document["kind"]).iter_errors(document), key=str)
        assert not errors, "\n".join(f"{document['kind']}: {e.json_path}: {e.message}" for e in errors)
    names = [group["name"] for group in one(rendered, "PrometheusRule")["spec"]["groups"]]
    assert len(names) == len(set(names)), f"rule group names must be unique: {names}"


def test_crd_schemas_reject_what_the_operator_rejects(rendered: list[dict[str, Any]]) -> None:
    """The schemas bite: a malformed duration, a typo'd field, a rule with no expr are all errors."""
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    assert not operator_validator("ServiceMonitor").is_valid(monitor)
    monitor = copy.deepcopy(one(rendered, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert not operator_validator("ServiceMonitor").is_valid(monitor)
    rule = copy.deepcopy(one(rendered, "PrometheusRule"))
    rule["spec"]["groups"].append({"name": "broken", "rules": [{"alert": "NoExpression"}]})
    assert not operator_validator("PrometheusRule").is_valid(rule)


def test_generated_manifests_are_up_to_date() -> None:
    """prometheusrule.yaml and grafana-dashboards.yaml are what `python -m deploy.generate` writes now."""
    for path, text in generate.outputs().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run `python -m deploy.generate`"
        )


def test_prometheus_rule_carries_every_alert_rule(rendered: list[dict[str, Any]]) -> None:
    files = generate.rule_files()
    assert files, "no rule files under alerts/"
    expected = [
        group for path in files for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    assert one(rendered, "PrometheusRule")["spec"]["groups"] == expected


def test_prometheus_rule_passes_promtool(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one(rendered, "PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmaps_carry_every_dashboard(rendered: list[dict[str, Any]]) -> None:
    maps = [
        d
        for d in rendered
        if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    shipped = {name: text for d in maps for name, text in d["data"].items()}
    files = {
        path.name: path.read_text(encoding="utf-8") for path in sorted(generate.DASHBOARDS.glob("*.json"))
    }
    assert shipped == files
    for document in maps:
        assert len(json.dumps(document)) < CLIENT_SIDE_APPLY_LIMIT, document["metadata"]["name"]


def test_dashboard_generator_makes_one_sidecar_configmap_per_dashboard(tmp_path: Path) -> None:
    for name in ("overview", "flink_agents"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"title": name, "panels": []}, indent=2) + "\n")
    documents = [d for d in yaml.safe_load_all(generate.dashboard_configmaps(tmp_path)) if d]
    assert [d["metadata"]["name"] for d in documents] == [
        "lenses-hq-exporter-dashboard-flink-agents",
        "lenses-hq-exporter-dashboard-overview",
    ]
    for document in documents:
        assert document["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(key, text)] = document["data"].items()
        assert text == (tmp_path / key).read_text()


def test_deployment_is_hardened(rendered: list[dict[str, Any]]) -> None:
    pod = workload(rendered)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert all(not mount.get("subPath") for mount in container["volumeMounts"]), "subPath mounts never update"


def test_service_and_monitor_reach_the_exporters_port(rendered: list[dict[str, Any]]) -> None:
    deployment = workload(rendered)
    service, monitor = one(rendered, "Service"), one(rendered, "ServiceMonitor")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    config = yaml.safe_load(config_map(rendered)["data"]["config.yml"])
    listen_port = int(config["web"]["listen_address"].rpartition(":")[2])
    [port] = [p for p in container["ports"] if p["containerPort"] == listen_port]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in (port["name"], listen_port)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert port["name"] in [p["targetPort"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    service_ports = [p["name"] for p in service["spec"]["ports"]]
    assert all(endpoint["port"] in service_ports for endpoint in monitor["spec"]["endpoints"])
    # The job label the alert rules select is the Service's jobLabel value.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert f'job="{job}"' in yaml.safe_dump(one(rendered, "PrometheusRule")["spec"])


def test_config_loads_with_the_secret_mounted_as_files(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The ConfigMap's config reads its credentials from the Secret's files at the path the pod mounts."""
    pod = workload(rendered)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    [secret_volume] = [name for name, volume in volumes.items() if "secret" in volume]
    [config_volume] = [name for name, volume in volumes.items() if "configMap" in volume]
    configmap = config_map(rendered)
    assert volumes[config_volume]["configMap"]["name"] == configmap["metadata"]["name"]
    assert f"--config.file={mounts[config_volume]}/config.yml" in container["args"]

    secret = secret_example()
    assert volumes[secret_volume]["secret"]["secretName"] == secret["metadata"]["name"]
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    for key, value in secret["stringData"].items():
        (secrets_dir / key).write_text(value)
    text = configmap["data"]["config.yml"]
    assert "token:" not in text.replace("token_file:", ""), "credentials belong in the Secret, not the config"
    config_file = tmp_path / "config.yml"
    config_file.write_text(text.replace(mounts[secret_volume], str(secrets_dir)))
    settings = load_settings(config_file, environ={})

    assert settings.lenses is not None
    assert settings.lenses.token.get() == secret["stringData"]["lenses-hq-token"]
    [target] = settings.confluent.targets
    assert target.api_key is not None and target.api_secret is not None
    assert target.api_key.get() == secret["stringData"]["confluent-api-key"]
    assert target.api_secret.get() == secret["stringData"]["confluent-api-secret"]


def test_shards_are_numbered_by_pod_index_and_counted_by_replicas() -> None:
    """Pod I of the sharded StatefulSet runs --shard=I, and --total-shards equals the replica count."""
    statefulset = one(render(SHARDED), "StatefulSet")
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    [shard_env] = [variable for variable in container["env"] if variable["name"] == "SHARD"]
    pod_index = "metadata.labels['apps.kubernetes.io/pod-index']"
    assert shard_env["valueFrom"]["fieldRef"]["fieldPath"] == pod_index
    assert "--shard=$(SHARD)" in container["args"]
    assert f"--total-shards={statefulset['spec']['replicas']}" in container["args"]
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"


def test_sharded_variant_differs_from_the_base_only_in_its_workload() -> None:
    """Everything but the Deployment → StatefulSet swap comes from the base, so the two cannot drift."""
    base = [d for d in render(BASE) if d["kind"] != "Deployment"]
    sharded = [d for d in render(SHARDED) if d["kind"] != "StatefulSet"]
    assert sorted(base, key=json.dumps) == sorted(sharded, key=json.dumps)
    base_pod = one(render(BASE), "Deployment")["spec"]["template"]["spec"]
    sharded_pod = one(render(SHARDED), "StatefulSet")["spec"]["template"]["spec"]
    [base_container], [sharded_container] = base_pod["containers"], sharded_pod["containers"]
    for key in ("securityContext", "resources", "volumeMounts", "livenessProbe", "readinessProbe", "ports"):
        assert base_container[key] == sharded_container[key], key
    assert base_pod["volumes"] == sharded_pod["volumes"]
    assert base_pod["securityContext"] == sharded_pod["securityContext"]


def test_the_service_monitor_honours_the_exporters_labels(rendered: list[dict[str, Any]]) -> None:
    # The exporter's `environment` and `tier` must win over target labels of the same name.
    endpoints = one(rendered, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoints
    assert all(endpoint.get("honorLabels") is True for endpoint in endpoints), endpoints
