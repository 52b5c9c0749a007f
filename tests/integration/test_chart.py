"""The Helm chart, checked offline with the real helm (lint, template) against the service's own
config and policy models, deploy/rbac/role.yaml, the image and the Prometheus scrape config.

An integration test because helm is built from the Go module proxy (deploy/helm/tool.py,
about 4.5 minutes cold, cached afterwards); tests/integration/test_deploy_on_cluster.py
installs the same chart on a real API server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelmedic.config import load_settings
from modelmedic.response.policy import parse_policy
from modelmedic.remediations import default_registry

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.helm import tool as helm_tool  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "modelmedic"
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
ROLE = ROOT / "deploy" / "rbac" / "role.yaml"
ADMISSION_POLICY = ROOT / "deploy" / "rbac" / "admission-policy.yaml"


@pytest.fixture(scope="session")
def helm() -> str:
    """A real helm v3 (deploy/helm/tool.py builds it from the Go module proxy once, cached)."""
    return helm_tool.ensure_helm()


def render(helm: str, *args: str, namespace: str = "modelmedic", release: str = "modelmedic") -> list[dict]:
    """``helm template`` the chart; the manifests as dicts (empty documents dropped)."""
    result = subprocess.run([helm, "template", release, str(CHART), "--namespace", namespace, *args],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]



# ---------------------------------------------------------------- Prometheus


def test_the_scrape_config_finds_the_charts_pods(helm):
    """prometheus.yml's DNS name is the headless Service the chart makes for release 'modelmedic'."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    docs = render(helm, namespace="modelmedic")
    headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1 and headless[0]["spec"]["publishNotReadyAddresses"] is True
    svc = headless[0]
    assert sd["names"] == [f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"]
    assert sd["port"] == svc["spec"]["ports"][0]["port"]
    pod = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert pod["prometheus.io/port"] == str(sd["port"]) and pod["prometheus.io/path"] == job["metrics_path"]


# ---------------------------------------------------------------- Helm


def test_helm_lint_strict_passes(helm):
    result = subprocess.run([helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_the_charts_role_is_exactly_deploy_rbac_role(helm):
    """Least privilege lives in one place: the chart's Role must not drift from deploy/rbac/role.yaml."""
    reference = next(d for d in yaml.safe_load_all(ROLE.read_text()) if d and d["kind"] == "Role")
    docs = render(helm, "--set", "rbac.namespaces={models,serving}")
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["models", "serving"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["models", "serving"]
    for role in roles:
        assert role["rules"] == reference["rules"], (
            "deploy/rbac/role.yaml changed: make deploy/helm/modelmedic/templates/rbac.yaml grant the same rules")
    sa = one(docs, "ServiceAccount")
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": roles[0]["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "modelmedic"}]
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}], "nothing cluster-wide"


def test_the_charts_admission_policy_is_deploy_rbac_admission_policy(helm):
    """The policy tested on the real API server (tests/integration/test_admission_policy.py), with the release's
    ServiceAccount as the identity it restricts and rbac.admissionPolicy.imagePatterns as the allowed images."""
    reference = {d["kind"]: d for d in yaml.safe_load_all(ADMISSION_POLICY.read_text()) if d}
    docs = render(helm)
    policy, binding = one(docs, "ValidatingAdmissionPolicy"), one(docs, "ValidatingAdmissionPolicyBinding")
    assert policy["spec"] == reference["ValidatingAdmissionPolicy"]["spec"], (
        "deploy/rbac/admission-policy.yaml changed: make templates/admission-policy.yaml say the same")
    assert binding["spec"] == {**reference["ValidatingAdmissionPolicyBinding"]["spec"],
                               "policyName": policy["metadata"]["name"]}

    docs = render(helm, "--set", "rbac.admissionPolicy.imagePatterns={^registry[.]example[.]com/.+@sha256:.+$}",
                  namespace="ops", release="mm")
    variables = {v["name"]: v["expression"] for v in one(docs, "ValidatingAdmissionPolicy")["spec"]["variables"]}
    assert variables["imagePatterns"] == '["^registry[.]example[.]com/.+@sha256:.+$"]'
    identity = one(docs, "ValidatingAdmissionPolicy")["spec"]["matchConditions"][0]["expression"]
    assert identity == f"request.userInfo.username == 'system:serviceaccount:ops:{one(docs, 'ServiceAccount')['metadata']['name']}'"
    assert not [d for d in render(helm, "--set", "rbac.admissionPolicy.create=false")
                if d["kind"].startswith("ValidatingAdmissionPolicy")]


def test_the_rendered_config_is_one_the_service_accepts(helm, tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("MODELMEDIC_")]:
        monkeypatch.delenv(name)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "config": {"kafka": {"bootstrap_servers": "b1:9093,b2:9093", "group_id": "mm-prod", "partitions": 24},
                   "detection": {"threshold": 0.999}, "http": {"port": 9999},
                   "sinks": [{"type": "alertmanager", "url": "http://alertmanager:9093"}]},
        "policy": {"rules": [{"match": {"anomaly_class": "latency", "models": ["ranker-*"]},
                              "playbooks": [{"name": "scale-out", "params": {"step": 2, "max_replicas": 20}}]}],
                   "targets": {"namespace": "serving"}},
        "rbac": {"namespaces": ["serving"]},
    }))
    docs = render(helm, "-f", str(values))
    data = one(docs, "ConfigMap")["data"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(data["config.yaml"])
    settings = load_settings(config_path)
    assert settings.kafka.bootstrap_servers == "b1:9093,b2:9093" and settings.kafka.partitions == 24
    assert settings.detection.threshold == 0.999
    assert settings.kubernetes.in_cluster is True
    # the chart owns where the service listens: the probes and the Service must reach it
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", container["ports"][0]["containerPort"])
    assert str(settings.policy_file) == "/etc/modelmedic/policy.yaml"
    policy = parse_policy(yaml.safe_load(data["policy.yaml"]), "chart policy")
    default_registry.load_entry_points()
    policy.validate_playbooks(default_registry)
    assert policy.targets.namespace == "serving"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == str(settings.policy_file.parent) and container["args"][-1] == f"{mount['mountPath']}/config.yaml"


def test_a_registry_git_remote_is_rendered_as_settings_a_checkout_volume_and_the_secret(helm, tmp_path, monkeypatch):
    """registry.git values become the service's registry_git settings (what tests/integration/
    test_registry_git_server.py runs against real git servers), a writable emptyDir for the checkouts
    and the credentials Secret mounted read-only where credentials_dir points."""
    for name in [n for n in os.environ if n.startswith("MODELMEDIC_")]:
        monkeypatch.delenv(name)
    docs = render(helm, "--set", "registry.git.url=https://git.example/ml/registry.git", "--set", "registry.git.ref=prod",
                  "--set", "registry.git.refreshInterval=120", "--set", "registry.git.existingSecret=registry-token",
                  "--set", "registry.git.pushStats=true")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(one(docs, "ConfigMap")["data"]["config.yaml"])
    remote = load_settings(config_path).registry_git
    assert remote is not None
    assert (remote.url, remote.ref, remote.refresh_s, remote.push_stats) == (
        "https://git.example/ml/registry.git", "prod", 120, True)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["registry"]["mountPath"] == str(remote.checkout_dir) and "emptyDir" in volumes["registry"]
    assert mounts["registry-credentials"] == {"name": "registry-credentials", "readOnly": True,
                                              "mountPath": str(remote.credentials_dir)}
    assert volumes["registry-credentials"]["secret"] == {"secretName": "registry-token", "defaultMode": 0o440}

    anonymous = render(helm, "--set", "registry.git.url=git://git.example/registry.git")
    config_path.write_text(one(anonymous, "ConfigMap")["data"]["config.yaml"])
    assert load_settings(config_path).registry_git.credentials_dir is None
    assert load_settings(config_path).registry_git.push_stats is False, "read-only unless asked"
    assert "registry-credentials" not in {v["name"] for v in one(anonymous, "Deployment")["spec"]["template"]["spec"]["volumes"]}

    default = render(helm)
    assert "registry_git" not in yaml.safe_load(one(default, "ConfigMap")["data"]["config.yaml"])
    assert "registry" not in {v["name"] for v in one(default, "Deployment")["spec"]["template"]["spec"]["volumes"]}


def test_the_pod_is_locked_down_and_probed(helm):
    deployment = one(render(helm), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["automountServiceAccountToken"] is True
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "limits" in container["resources"] and "requests" in container["resources"]
    # the image runs as the uid the chart asks for (deploy/container/Containerfile)
    user = re.search(r"^USER (\d+)", CONTAINERFILE.read_text(), re.MULTILINE).group(1)
    assert pod["securityContext"]["runAsUser"] == int(user)
    cmd = json.loads(re.search(r"^CMD (.+)$", CONTAINERFILE.read_text(), re.MULTILINE).group(1))
    assert cmd == container["args"], "the image's default command and the chart's args must agree"


def test_secrets_are_referenced_never_rendered_into_the_config(helm):
    docs = render(helm, "--set", "secrets.existingSecret=modelmedic-credentials")
    assert not [d for d in docs if d["kind"] == "Secret"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "modelmedic-credentials"}}]
    # a test cluster may let the chart make the Secret; its keys must be MODELMEDIC_* variables
    docs = render(helm, "--set", "secrets.create=true", "--set", "secrets.env.MODELMEDIC_HTTP__API_TOKEN=s3cret")
    secret = one(docs, "Secret")
    assert secret["stringData"] == {"MODELMEDIC_HTTP__API_TOKEN": "s3cret"}
    assert "s3cret" not in one(docs, "ConfigMap")["data"]["config.yaml"]
    before = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    docs = render(helm, "--set", "secrets.create=true", "--set", "secrets.env.MODELMEDIC_HTTP__API_TOKEN=rotated")
    assert one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] != before
    bad = subprocess.run([helm, "template", "x", str(CHART), "--set", "secrets.create=true", "--set", "secrets.env.PASSWORD=x"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "keys must be MODELMEDIC_* environment variables" in bad.stderr


def test_a_policy_target_namespace_without_the_role_fails_the_install(helm):
    """Caught by helm at install, not as a 403 in the middle of an incident."""
    args = ["template", "x", str(CHART), "--set", "policy.targets.namespace=serving",
            "--set", "policy.targets.overrides.legacy-scorer.namespace=legacy"]
    bad = subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and 'namespace "serving", but rbac.namespaces (models)' in bad.stderr
    bad = subprocess.run([helm, *args, "--set", "rbac.namespaces={serving}"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and 'namespace "legacy"' in bad.stderr
    docs = render(helm, *args[3:], "--set", "rbac.namespaces={serving,legacy}")
    assert sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role") == ["legacy", "serving"]
    # without remediation there is nothing to refuse
    assert not [d for d in render(helm, *args[3:], "--set", "remediation.enabled=false") if d["kind"] == "Role"]


def test_remediation_off_means_no_role_and_no_api_token(helm, tmp_path):
    docs = render(helm, "--set", "remediation.enabled=false")
    assert not [d for d in docs if d["kind"] in {"Role", "RoleBinding"}]
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    config = tmp_path / "config.yaml"
    config.write_text(one(docs, "ConfigMap")["data"]["config.yaml"])
    assert load_settings(config).kubernetes.in_cluster is False


def test_optional_objects(helm):
    docs = render(helm)
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    docs = render(helm, "--set", "serviceMonitor.enabled=true", "--set", "podDisruptionBudget.enabled=false")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["selector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]


def test_the_operations_guides_values_and_secret_make_a_config_the_service_accepts(helm, tmp_path, monkeypatch):
    """docs/operations.md's values-prod.yaml and Secret keys, as the pod would see them."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    values = re.search(r"```yaml\n(# values-prod\.yaml\n.*?)```", guide, re.DOTALL).group(1)
    (tmp_path / "values-prod.yaml").write_text(values)
    docs = render(helm, "-f", str(tmp_path / "values-prod.yaml"))
    assert sorted(r["metadata"]["namespace"] for r in docs if r["kind"] == "Role") == ["legacy", "serving"]
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "modelmedic-credentials"}}]
    assert container["image"] == "registry.example.com/mlops/modelmedic:0.1.0"
    secret = dict(re.findall(r"--from-literal=(MODELMEDIC_\w+)='([^']*)'", guide.replace("\n                                    ", "")))
    assert set(secret) == {"MODELMEDIC_KAFKA__SASL_PASSWORD", "MODELMEDIC_SINKS"}
    for name in [n for n in os.environ if n.startswith("MODELMEDIC_")]:
        monkeypatch.delenv(name)
    for name, value in secret.items():
        monkeypatch.setenv(name, value.replace("...", "x" * 32))
    data = one(docs, "ConfigMap")["data"]
    (tmp_path / "config.yaml").write_text(data["config.yaml"])
    settings = load_settings(tmp_path / "config.yaml")
    assert settings.kafka.security_protocol == "SASL_SSL" and settings.kafka.sasl_password == "x" * 32
    assert [s.type for s in settings.sinks] == ["pagerduty", "slack"]
    parse_policy(yaml.safe_load(data["policy.yaml"]), "guide policy")
