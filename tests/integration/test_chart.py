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
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from fixtures_prometheus import FakePod, Prometheus, selected_services, servicemonitor_scrape_configs  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "modelmedic"
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = CHART / "files" / "alerts.yml"
DASHBOARD = CHART / "files" / "modelmedic.json"
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


def monitoring(helm: str, release: str = "mm", namespace: str = "ops") -> list[dict]:
    """The chart under ``release`` with the ServiceMonitor, PrometheusRule and dashboard ConfigMap on."""
    return render(helm, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                  "--set", "grafanaDashboard.enabled=true", namespace=namespace, release=release)


def charts_job(docs: list[dict]) -> str:
    """The job label the ServiceMonitor gives the release's pods."""
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    (relabel,) = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    return relabel["replacement"]


def test_the_servicemonitor_selects_one_service_so_each_pod_is_one_target(helm):
    """Both Services carry the selector labels; selecting on those alone scraped every pod twice."""
    docs = monitoring(helm)
    (selected,) = selected_services(one(docs, "ServiceMonitor"), docs)
    assert selected["spec"]["clusterIP"] == "None" and selected["spec"]["publishNotReadyAddresses"] is True
    assert len([d for d in docs if d["kind"] == "Service"]) == 2


def test_the_prometheusrule_is_alerts_yml_keyed_on_the_releases_job(helm):
    """One source: files/alerts.yml (= deploy/prometheus/alerts.yml) with job="modelmedic" replaced by
    the job the ServiceMonitor sets; for release 'modelmedic' that job is 'modelmedic', so it is the file as is."""
    source = yaml.safe_load(ALERTS.read_text())
    docs = monitoring(helm)
    job = charts_job(docs)
    assert job == "mm-modelmedic"
    rendered = one(docs, "PrometheusRule")["spec"]
    as_source = json.dumps(rendered, sort_keys=True).replace(f'job=\\"{job}\\"', 'job=\\"modelmedic\\"')
    assert as_source == json.dumps(source, sort_keys=True)
    for expr in [rule["expr"] for group in rendered["groups"] for rule in group["rules"]]:
        selectors = re.findall(r"\b(?:modelmedic_\w+|up)\b(\{[^}]*\})?", expr)
        assert selectors and all(f'job="{job}"' in s for s in selectors), f"a series not keyed on the job: {expr}"
    default = render(helm, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true")
    assert charts_job(default) == "modelmedic" and one(default, "PrometheusRule")["spec"] == source


def test_every_rule_links_its_runbook_section(helm):
    guide = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in re.findall(r"^#+ (.+)$", guide, re.M)}
    docs = render(helm, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.runbookBaseUrl=https://docs.example/ops")
    for group in one(docs, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url == f"https://docs.example/ops#{rule['alert'].lower()}", url
            assert rule["alert"].lower() in anchors, f"docs/operations.md has no section {rule['alert']}"


def test_the_rules_fire_under_a_release_named_mm(helm, tmp_path):
    """deploy/prometheus/alerts_test.yml's cases, run by promtool on the PrometheusRule of release
    'mm' with their series under that release's job: ModelmedicDown fires for a down replica,
    ModelmedicAbsent stays quiet while its targets exist (with job="modelmedic" hard-coded, the
    first stayed silent and the second always fired)."""
    docs = monitoring(helm)
    job = charts_job(docs)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(one(docs, "PrometheusRule")["spec"]))
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    cases["rule_files"] = ["rules.yml"]
    for case in cases["tests"]:
        for series in case["input_series"]:
            series["series"] = series["series"].replace('job="modelmedic"', f'job="{job}"')
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                if alert["exp_labels"].get("job") == "modelmedic":
                    alert["exp_labels"]["job"] = job
    assert sum(series["series"].count(job) for case in cases["tests"] for series in case["input_series"]) >= 20
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(cases))
    result = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_the_dashboard_configmap_is_the_dashboard_with_the_sidecar_label(helm):
    docs = monitoring(helm)
    dashboard = one(docs, "ConfigMap", "mm-modelmedic-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["modelmedic.json"]) == json.loads(DASHBOARD.read_text())
    docs = render(helm, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.labels.team-dashboards=yes",
                  "--set", "grafanaDashboard.namespace=monitoring")
    dashboard = one(docs, "ConfigMap", "modelmedic-dashboard")
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["metadata"]["labels"]["team-dashboards"] == "yes"
    assert not [d for d in render(helm) if d["kind"] in {"PrometheusRule", "ServiceMonitor"}
                or d["metadata"]["name"].endswith("-dashboard")]


class _Exporter(ThreadingHTTPServer):
    """A pod's /metrics: fixed text (what the test sums is known)."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


async def test_a_real_prometheus_scraping_the_servicemonitor_sees_each_pod_once(helm, tmp_path):
    """The rendered ServiceMonitor, translated as the Prometheus Operator would (no Operator runs
    here: tests/fixtures_prometheus.py), scraped by a real Prometheus with the rendered
    PrometheusRule loaded: two pods are two targets, sum() adds each pod's lag once, no rule
    fires while both are up, and ModelmedicDown goes pending for the one that stops."""
    docs = monitoring(helm)
    job = charts_job(docs)
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    exporters = {name: _Exporter(f"modelmedic_consumer_lag_records {lag}\nmodelmedic_ready 1\n")
                 for name, lag in (("mm-modelmedic-a", 100), ("mm-modelmedic-b", 250))}
    pods = [FakePod(name, labels, f"127.0.0.1:{server.server_port}") for name, server in exporters.items()]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(one(docs, "PrometheusRule")["spec"]))
    prometheus = Prometheus(tmp_path, servicemonitor_scrape_configs(one(docs, "ServiceMonitor"), docs, pods), [rules])
    try:
        await prometheus.ready()
        await prometheus.until("both pods up", lambda: len(prometheus.query(f'up{{job="{job}"}} == 1')) == 2)
        assert sorted(r["metric"]["pod"] for r in prometheus.query("up")) == sorted(exporters), "one target per pod"
        assert prometheus.query(f'sum(modelmedic_consumer_lag_records{{job="{job}"}})')[0]["value"][1] == "350"
        # ModelmedicAbsent may be pending only from an evaluation before the first scrape
        quiet = await prometheus.until("every rule evaluated and inactive", lambda: [
            r for r in prometheus.rules() if r["state"] == "inactive" and r.get("lastEvaluation", "").startswith("20")
        ] if all(r["state"] == "inactive" for r in prometheus.rules()) else None)
        assert len(quiet) == len(yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]), quiet
        assert all(r["health"] == "ok" for r in quiet), quiet
        exporters["mm-modelmedic-b"].shutdown()
        exporters["mm-modelmedic-b"].server_close()
        pending = await prometheus.until("ModelmedicDown pending", lambda: prometheus.query('ALERTS{alertname="ModelmedicDown"}'))
        assert [(a["metric"]["pod"], a["metric"]["job"]) for a in pending] == [("mm-modelmedic-b", job)]
    finally:
        prometheus.stop()
        for server in exporters.values():
            server.shutdown()
            server.server_close()


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
    assert monitor["spec"]["selector"]["matchLabels"].items() >= one(docs, "Deployment")["spec"]["selector"]["matchLabels"].items()
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


# ---------------------------------------------------------------- chart conventions (issue 18)


def helm_fails(helm: str, *args: str) -> str:
    """Run helm expecting a refusal; its message."""
    result = subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0, f"helm {' '.join(args)} passed:\n{result.stdout[-2000:]}"
    return result.stdout + result.stderr


def test_the_values_schema_refuses_a_wrong_type_or_an_unknown_key_with_its_path(helm):
    for command in (["lint", "--strict", str(CHART)], ["template", "x", str(CHART)]):
        assert "at '/replicaCount': got string, want integer" in helm_fails(helm, *command, "--set", "replicaCount=two")
    assert "additional properties 'replicas' not allowed" in helm_fails(helm, "template", "x", str(CHART), "--set", "replicas=3")
    assert "at '/networkPolicy/egress/kafka/ports/0'" in helm_fails(
        helm, "template", "x", str(CHART), "--set", "networkPolicy.egress.kafka.ports={99999}")
    assert "at '/image/pullPolicy'" in helm_fails(helm, "template", "x", str(CHART), "--set", "image.pullPolicy=Sometimes")


def test_the_values_schema_declares_every_value(helm):
    """Each key of values.yaml is a property of the schema where the schema lists properties (config
    and policy are free-form: the service validates them at start), and those objects take no other."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def walk(values: dict, node: dict, path: str) -> None:
        if "properties" not in node:
            return
        assert node.get("additionalProperties") is False, f"{path or 'the top level'} takes unknown keys"
        for key, value in values.items():
            assert key in node["properties"], f"{path}{key} is not in values.schema.json"
            if isinstance(value, dict):
                walk(value, node["properties"][key], f"{path}{key}.")

    walk(yaml.safe_load((CHART / "values.yaml").read_text()), schema, "")


def guide_values(name: str) -> dict:
    """The values file named ``name`` in docs/operations.md (a ```yaml block that starts with ``# name``)."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    return yaml.safe_load(re.search(rf"```yaml\n(# {re.escape(name)}\n.*?)```", guide, re.DOTALL).group(1))


def test_the_kafka_ca_of_the_guide_is_mounted_where_the_config_reads_it(helm, tmp_path, monkeypatch):
    """docs/operations.md's values-kafka-ca.yaml: a Secret volume, its mount, and ssl_cafile inside it;
    the rendered config loads once the Secret's ca.crt is at the mount path (here a tmp copy of it)."""
    values = guide_values("values-kafka-ca.yaml")
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    docs = render(helm, "-f", str(tmp_path / "values.yaml"))
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volume = next(v for v in pod["volumes"] if v["name"] == "kafka-ca")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
    assert volume["secret"]["secretName"] == "kafka-ca" and mount["readOnly"] is True
    rendered = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
    cafile = Path(rendered["kafka"]["ssl_cafile"])
    assert cafile.parent == Path(mount["mountPath"]) and cafile.name == volume["secret"]["items"][0]["path"]
    # the pod's view: the Secret's key projected into the mount
    local = tmp_path / "mount"
    local.mkdir()
    (local / cafile.name).write_text("-----BEGIN CERTIFICATE-----\n")
    rendered["kafka"]["ssl_cafile"] = str(local / cafile.name)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(rendered))
    for name in [n for n in os.environ if n.startswith("MODELMEDIC_")]:
        monkeypatch.delenv(name)
    assert load_settings(tmp_path / "config.yaml").kafka.security_protocol == "SSL"


def test_extra_env_and_env_from_come_after_the_charts_own(helm):
    docs = render(helm, "--set", "secrets.existingSecret=modelmedic-credentials",
                  "--set", "extraEnvFrom[0].secretRef.name=kafka-client", "--set", "extraEnvFrom[1].configMapRef.name=overrides",
                  "--set", "extraEnv[0].name=MODELMEDIC_DETECTION__THRESHOLD", "--set-string", "extraEnv[0].value=0.999")
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "modelmedic-credentials"}}, {"secretRef": {"name": "kafka-client"}},
                                    {"configMapRef": {"name": "overrides"}}]
    assert container["env"][-1] == {"name": "MODELMEDIC_DETECTION__THRESHOLD", "value": "0.999"}
    assert [e["name"] for e in container["env"][:2]] == ["POD_NAME", "MODELMEDIC_KAFKA__CLIENT_ID"]
    alone = one(render(helm, "--set", "extraEnvFrom[0].secretRef.name=kafka-client"), "Deployment")
    assert alone["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "kafka-client"}}]
    assert "envFrom" not in one(render(helm), "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_replicas_spread_over_nodes_and_zones_unless_told_otherwise(helm):
    deployment = one(render(helm), "Deployment")
    selector = deployment["spec"]["selector"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [(c["topologyKey"], c["maxSkew"], c["whenUnsatisfiable"]) for c in spread] == [
        ("kubernetes.io/hostname", 1, "ScheduleAnyway"), ("topology.kubernetes.io/zone", 1, "ScheduleAnyway")]
    assert all(c["labelSelector"] == selector for c in spread)
    assert "affinity" not in deployment["spec"]["template"]["spec"]
    single = one(render(helm, "--set", "replicaCount=1"), "Deployment")["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in single, "nothing to spread"
    mine = one(render(helm, "--set", "topologySpreadConstraints[0].maxSkew=2",
                      "--set", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                      "--set", "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"), "Deployment")
    assert mine["spec"]["template"]["spec"]["topologySpreadConstraints"] == [
        {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": selector}]
    assert "at '/topologySpreadConstraints/0'" in helm_fails(
        helm, "template", "x", str(CHART), "--set", "topologySpreadConstraints[0].maxSkew=1")


def test_the_network_policy_is_opt_in_and_opens_only_the_configured_paths(helm):
    assert not [d for d in render(helm) if d["kind"] == "NetworkPolicy"]
    docs = render(helm, "--set", "networkPolicy.enabled=true",
                  "--set", "networkPolicy.ingress.from[0].namespaceSelector.matchLabels.team=observability",
                  "--set", "networkPolicy.egress.kafka.to[0].ipBlock.cidr=10.0.8.0/24",
                  "--set", "networkPolicy.egress.extra[0].ports[0].port=22")
    policy, deployment, test_job = one(docs, "NetworkPolicy"), one(docs, "Deployment"), one(docs, "Job")
    spec = policy["spec"]
    assert spec["podSelector"] == deployment["spec"]["selector"] and spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] == "http"
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}}},
                               {"podSelector": {"matchLabels": test_job["spec"]["template"]["metadata"]["labels"]}}]
    egress = [({p["port"] for p in rule.get("ports", [])}, rule.get("to")) for rule in spec["egress"]]
    assert egress == [({53}, None), ({9092, 9093}, [{"ipBlock": {"cidr": "10.0.8.0/24"}}]), ({9093, 443}, None),
                      ({443, 6443}, None), ({22}, None)]
    # no remediation: no API server to reach; no ingress peers given: any source may reach the HTTP port
    quiet = one(render(helm, "--set", "networkPolicy.enabled=true", "--set", "remediation.enabled=false"), "NetworkPolicy")
    assert [{p["port"] for p in rule["ports"]} for rule in quiet["spec"]["egress"]] == [{53}, {9092, 9093}, {9093, 443}]
    assert quiet["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    # a registry read from git: its remote too
    cloning = one(render(helm, "--set", "networkPolicy.enabled=true", "--set", "remediation.enabled=false",
                         "--set", "registry.git.url=ssh://git.example/ml/registry.git"), "NetworkPolicy")
    assert {p["port"] for p in cloning["spec"]["egress"][-1]["ports"]} == {443, 22, 9418}


class _Readyz(BaseHTTPRequestHandler):
    """/readyz answering the status codes in ``codes`` one request at a time, then the last one forever."""

    codes: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        self.send_response(code if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def run_the_test_pods_command(job: dict, url: str, timeout_s: str) -> subprocess.CompletedProcess:
    """The helm test container's command and env as rendered, with this Python, against ``url``."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    env.update(READYZ_URL=url, READYZ_TIMEOUT_S=timeout_s)
    assert container["command"][0] == "python3"
    return subprocess.run([sys.executable, *container["command"][1:]], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_helm_test_is_a_job_that_gets_readyz_through_the_service(helm):
    """The Job's manifest, then its command run here against a real HTTP server: 503 twice then 200
    passes; 503 throughout or nothing listening fails with the reason (tests/integration/
    test_chart_on_cluster.py runs `helm test` itself on the local API server)."""
    docs = render(helm, "--set", "nodeSelector.type=kwok", namespace="ops", release="mm")
    job, service, deployment = one(docs, "Job"), one(docs, "Service", "mm-modelmedic"), one(docs, "Deployment")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    pod = job["spec"]["template"]
    labels, selector = pod["metadata"]["labels"], deployment["spec"]["selector"]["matchLabels"]
    assert not selector.items() <= labels.items(), "the test pod must not count as a replica"
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["nodeSelector"] == {"type": "kwok"}
    assert pod["spec"]["containers"][0]["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["READYZ_URL"] == f"http://mm-modelmedic.ops.svc:{service['spec']['ports'][0]['port']}/readyz"
    assert not [d for d in render(helm, "--set", "helmTest.enabled=false") if d["kind"] == "Job"]

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/readyz"
    try:
        _Readyz.codes = [503, 503, 200]
        passed = run_the_test_pods_command(job, url, "30")
        assert passed.returncode == 0 and passed.stdout.strip() == f"{url}: 200", passed.stderr
        _Readyz.codes = [503]
        failed = run_the_test_pods_command(job, url, "1")
        assert failed.returncode == 1 and "no 200 within 1 s; last: HTTP Error 503" in failed.stderr
    finally:
        server.shutdown()
        server.server_close()
    refused = run_the_test_pods_command(job, url, "1")
    assert refused.returncode == 1 and "Connection refused" in refused.stderr


def test_a_failed_start_is_the_pods_termination_message(helm):
    """A start refused by the service (a bad config, a playbook the image lacks: exit 3 with the reason)
    shows in `kubectl describe pod` as Last State's message, from the container's last log lines."""
    container = one(render(helm), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
