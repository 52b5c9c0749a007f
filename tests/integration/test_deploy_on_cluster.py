"""The deploy artifacts against real components.

- The Helm chart installed by the real ``helm install --wait`` on the real API server
  (tests/fixtures_kube.py): the Deployment rolls out and turns Ready on KWOK nodes, a config
  change (``helm upgrade``) rolls it again, ``helm uninstall`` removes its Roles, and the chart's ServiceAccount (a real token from the TokenRequest
  API, used through the service's in-cluster mode) can do exactly what deploy/rbac/role.yaml
  allows in the models namespace, and nothing else anywhere.
- The service started with ``modelmedic run --config`` on the chart's rendered config,
  scraped by a real Prometheus loading deploy/prometheus/alerts.yml: its metrics arrive,
  the alert rules evaluate, every Grafana query runs, and a stopped replica turns
  ModelmedicDown pending.

(tests/unit/test_deploy_artifacts.py checks the same files offline; this file has its own
name because pytest cannot collect two test modules of one basename without packages.)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from kubernetes.config import incluster_config

from deploy.helm import tool as helm_tool
from deploy.local import kafka as kafka_stack
from deploy.local import kube as local_kube
from deploy.local.procs import free_port
from fixtures_prometheus import Prometheus
from load.cluster import model_deployment
from modelmedic.config import KafkaSettings
from modelmedic.kafka import ensure_topics
from modelmedic.kube import KubeClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "modelmedic"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "modelmedic.json"
ROLE = ROOT / "deploy" / "rbac" / "role.yaml"
READY_TIMEOUT_S = 90.0

# What every authenticated identity may do (system:basic-user, discovery): not from our Role.
SELF_REVIEWS = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_tool.ensure_helm()


def render(helm: str, release: str, namespace: str, values: dict, tmp_path: Path) -> list[dict]:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    result = subprocess.run([helm, "template", release, str(CHART), "--namespace", namespace, "-f", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def run_helm(helm: str, stack: local_kube.KubeStack, tmp_path: Path, *args: str) -> str:
    """The real helm against the real API server as the admin, with its state kept in tmp_path."""
    env = {**os.environ, **{f"HELM_{k}_HOME": str(tmp_path / f"helm-{k.lower()}") for k in ("CACHE", "CONFIG", "DATA")}}
    result = subprocess.run([helm, *args, "--kubeconfig", stack.admin_kubeconfig], env=env,
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def installable_chart(tmp_path: Path) -> str:
    """The chart, minus its ``kubeVersion`` floor, which the local API server cannot meet by number.

    deploy/local/kube.py builds kube-apiserver from the Go modules without the version
    ldflags, so it reports ``v0.0.0-master+$Format:%H$`` (it is 1.34.3) and helm install refuses
    ``kubeVersion: >=1.25.0-0``. Only that line of Chart.yaml is dropped; every template is the same.
    """
    copy = tmp_path / "chart" / CHART.name
    shutil.copytree(CHART, copy)
    chart_yaml = copy / "Chart.yaml"
    lines = chart_yaml.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("kubeVersion:")]
    assert len(kept) == len(lines) - 1
    chart_yaml.write_text("".join(kept))
    return str(copy)


def values_file(values: dict, tmp_path: Path) -> str:
    path = tmp_path / f"values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def deployment_ready(stack: local_kube.KubeStack, namespace: str, name: str) -> dict | None:
    d = local_kube.api(stack, "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    s, want = d.get("status", {}), d["spec"]["replicas"]
    done = (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas") == want
            and s.get("readyReplicas") == want and s.get("availableReplicas") == want and s.get("replicas") == want)
    return d if done else None


async def wait_ready(stack: local_kube.KubeStack, namespace: str, name: str) -> dict:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = await asyncio.to_thread(deployment_ready, stack, namespace, name)
        if ready:
            return ready
        await asyncio.sleep(0.25)
    status = local_kube.api(stack, "GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}").get("status")
    raise AssertionError(f"deployment {namespace}/{name} not Ready in {READY_TIMEOUT_S:.0f}s: {status}")


class Identity:
    """Raw API calls with one bearer token, verified against the local CA."""

    def __init__(self, stack: local_kube.KubeStack, token: str) -> None:
        self.stack, self.token = stack, token
        self.ctx = ssl.create_default_context(cafile=stack.ca_file)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.stack.server + path, method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=self.ctx, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def rules(self, namespace: str) -> set[tuple[str, str, str]]:
        """(apiGroup, resource, verb) this identity may use in ``namespace``, self-reviews left out."""
        status, review = self.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                                   {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                                    "spec": {"namespace": namespace}})
        assert status == 201, review
        return {(group, resource, verb) for rule in review["status"]["resourceRules"]
                for group in rule.get("apiGroups", [""]) for resource in rule.get("resources", [])
                for verb in rule["verbs"] if resource not in SELF_REVIEWS}


def role_rules() -> set[tuple[str, str, str]]:
    role = next(d for d in yaml.safe_load_all(ROLE.read_text()) if d and d["kind"] == "Role")
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


# ---------------------------------------------------------------- the chart on a real API server


async def test_chart_rolls_out_on_kwok_nodes_with_least_privilege(kube_stack, helm, tmp_path, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    release_ns, models_ns, other_ns = f"mm-{suffix}", f"models-{suffix}", f"other-{suffix}"
    for ns in (release_ns, models_ns, other_ns):
        local_kube.ensure_namespace(kube_stack, ns)
    values = {
        "replicaCount": 3,
        "image": {"repository": "localhost/modelmedic", "tag": "0.1.0"},
        "nodeSelector": local_kube.KWOK_POD_PLACEMENT["nodeSelector"],
        "tolerations": local_kube.KWOK_POD_PLACEMENT["tolerations"],
        "rbac": {"namespaces": [models_ns]},
        "secrets": {"create": True, "env": {"MODELMEDIC_HTTP__API_TOKEN": "t0ken"}},
        "config": {"kafka": {"bootstrap_servers": "kafka.kafka:9092"}},
        "policy": {"targets": {"namespace": models_ns}},
    }
    kinds = {d["kind"] for d in render(helm, "modelmedic", release_ns, values, tmp_path)}
    assert kinds == {"ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment", "PodDisruptionBudget",
                     "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                     "Job"}  # the helm test hook (tests/integration/test_chart_on_cluster.py runs it)
    chart = installable_chart(tmp_path)
    t0 = time.monotonic()
    helm_args = ["--namespace", release_ns, "--wait", "--timeout", f"{READY_TIMEOUT_S:.0f}s"]
    await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "install", "modelmedic", chart,
                            "-f", values_file(values, tmp_path), *helm_args)
    deployment = await wait_ready(kube_stack, release_ns, "modelmedic")
    first_rollout_s = time.monotonic() - t0

    pods = local_kube.api(kube_stack, "GET", f"/api/v1/namespaces/{release_ns}/pods?labelSelector="
                          + urllib.parse.quote("app.kubernetes.io/name=modelmedic"))["items"]
    assert len(pods) == 3
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3, "the topology spread puts the replicas on different nodes"
    assert all(p["spec"]["serviceAccountName"] == "modelmedic" for p in pods)
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]) for p in pods)
    pdb = local_kube.api(kube_stack, "GET", f"/apis/policy/v1/namespaces/{release_ns}/poddisruptionbudgets/modelmedic")
    assert pdb["spec"]["maxUnavailable"] == 1

    # a config change rolls the pods (checksum annotation) and the rollout completes again; it also reads the
    # registry from a git remote with credentials from a Secret (the API server validates the volumes)
    values["config"]["detection"] = {"threshold": 0.999}
    local_kube.api(kube_stack, "POST", f"/api/v1/namespaces/{release_ns}/secrets", json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-reader"},
         "stringData": {"username": "modelmedic", "password": "deploy-token"}}))
    values["registry"] = {"git": {"url": "https://git.example/ml/registry.git", "existingSecret": "registry-reader"}}
    await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "upgrade", "modelmedic", chart,
                            "-f", values_file(values, tmp_path), *helm_args)
    rolled = await wait_ready(kube_stack, release_ns, "modelmedic")
    assert rolled["metadata"]["generation"] > deployment["metadata"]["generation"]
    old, new = (d["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for d in (deployment, rolled))
    assert old != new
    volumes = {v["name"]: v for v in rolled["spec"]["template"]["spec"]["volumes"]}
    assert volumes["registry-credentials"]["secret"] == {"secretName": "registry-reader", "defaultMode": 0o440}
    assert "emptyDir" in volumes["registry"]
    print(f"helm install --wait: Ready in {first_rollout_s:.1f}s")

    # the chart's ServiceAccount, with a real token from the TokenRequest API
    issued = local_kube.api(kube_stack, "POST", f"/api/v1/namespaces/{release_ns}/serviceaccounts/modelmedic/token",
                            json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {"expirationSeconds": 600}}))
    sa = Identity(kube_stack, issued["status"]["token"])
    status, review = sa.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{release_ns}:modelmedic"

    # exactly the Role's rules in the models namespace; nothing in its own or any other namespace
    assert sa.rules(models_ns) == role_rules()
    assert sa.rules(release_ns) == set()
    assert sa.rules(other_ns) == set()

    # what a playbook does works as this identity, through the service's in-cluster mode (what
    # kubernetes.in_cluster=true selects): the token and CA where a pod has them mounted, the
    # API server where KUBERNETES_SERVICE_HOST/PORT say. Scale a model through the scale subresource.
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text(sa.token)
    (mount / "ca.crt").write_bytes(Path(kube_stack.ca_file).read_bytes())
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(mount / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(mount / "ca.crt"))
    server = urllib.parse.urlsplit(kube_stack.server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", server.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    admin = KubeClient.from_kubeconfig(kube_stack.admin_kubeconfig)
    service = KubeClient.in_cluster()
    try:
        local_kube.api(kube_stack, "POST", f"/apis/apps/v1/namespaces/{models_ns}/deployments",
                       json.dumps(model_deployment("model-a", "v1", 1)))
        await admin.wait_rollout(models_ns, "model-a", READY_TIMEOUT_S)
        await service.set_replicas(models_ns, "model-a", 2)
        assert (await service.wait_rollout(models_ns, "model-a", READY_TIMEOUT_S)).ready_replicas == 2
    finally:
        admin.close()
        service.close()

    # and what it must never do is refused by the real authorizer
    forbidden = [
        ("DELETE", f"/apis/apps/v1/namespaces/{models_ns}/deployments/model-a", None),
        ("POST", f"/apis/apps/v1/namespaces/{models_ns}/deployments", model_deployment("model-b", "v1", 1)),
        ("GET", f"/api/v1/namespaces/{models_ns}/secrets", None),
        ("GET", f"/api/v1/namespaces/{release_ns}/secrets/modelmedic", None),
        ("GET", f"/api/v1/namespaces/{release_ns}/configmaps/modelmedic", None),
        ("GET", "/apis/apps/v1/deployments", None),
        ("GET", f"/apis/apps/v1/namespaces/{other_ns}/deployments", None),
        ("POST", f"/api/v1/namespaces/{models_ns}/pods/x/exec", None),
        ("PATCH", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{models_ns}/roles/modelmedic-remediator", {}),
    ]
    for method, path, body in forbidden:
        status, answer = sa.call(method, path, body)
        assert status == 403, f"{method} {path} -> {status}: {answer}"

    # helm uninstall takes the Roles in the models namespaces with it
    await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "uninstall", "modelmedic", "--namespace", release_ns, "--wait")
    roles = local_kube.api(kube_stack, "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{models_ns}/roles")["items"]
    assert roles == []
    for ns in (release_ns, models_ns, other_ns):
        local_kube.api(kube_stack, "DELETE", f"/api/v1/namespaces/{ns}")


# ---------------------------------------------------------------- Prometheus scraping the real service


def http_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def inference(i: int) -> dict:
    return {"model": f"model-{i % 3}", "version": "v1", "role": "production", "request_id": f"r{i}",
            "ts": 1_767_225_600_000 + i * 10, "latency_ms": 20.0 + i % 7, "ok": True, "prediction": 0.5}


async def test_prometheus_scrapes_the_service_run_from_the_charts_config(kafka, topics, helm, tmp_path):
    values = {
        "remediation": {"enabled": False},
        "config": {"kafka": {"bootstrap_servers": kafka.bootstrap, "topics": topics.model_dump(), "partitions": 3,
                             "group_id": f"g-{topics.inference}", **kafka_stack.SINGLE_BROKER},
                   "detection": {"snapshot_interval_s": 1.0}, "windows": {"idle_close_ms": 600_000}},
    }
    docs = render(helm, "modelmedic", "modelmedic", values, tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELMEDIC_")}
    # what a laptop run changes: listen on loopback, on a free port (the environment overrides the file)
    env.update(MODELMEDIC_HTTP__HOST="127.0.0.1", MODELMEDIC_HTTP__PORT=str(port))
    log = tmp_path / "modelmedic.log"
    with log.open("wb") as out:
        service = subprocess.Popen([sys.executable, "-m", "modelmedic", "run", "--config", str(config)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prometheus = None
    try:
        deadline = time.monotonic() + 60
        while http_get(f"http://127.0.0.1:{port}/readyz") != 200:
            assert service.poll() is None, f"modelmedic exited {service.returncode}: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"modelmedic not ready in 60s: {log.read_text()[-3000:]}"
            await asyncio.sleep(0.2)

        kafka_settings = KafkaSettings(**values["config"]["kafka"])
        await ensure_topics(kafka_settings)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            for i in range(300):
                record = inference(i)
                await producer.send(kafka_settings.topics.inference, json.dumps(record).encode(), key=record["model"].encode())
            await producer.send(kafka_settings.topics.inference, b"not json", key=b"model-0")
            await producer.flush()
        finally:
            await producer.stop()

        prometheus = Prometheus(tmp_path, [{"job_name": "modelmedic", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
                                [ALERTS])
        await prometheus.ready()
        await prometheus.until("the target up", lambda: [r for r in prometheus.query('up{job="modelmedic"}') if r["value"][1] == "1"])
        await prometheus.until("301 events scraped", lambda: prometheus.query("sum(modelmedic_events_total) >= 301"))
        ok = float(prometheus.query('sum(modelmedic_events_total{outcome="ok"})')[0]["value"][1])
        dead = prometheus.query('modelmedic_dead_letters_total{job="modelmedic"}')
        assert ok == 300 and [r["metric"]["reason"] for r in dead] == ["json"]

        # the alert rules of deploy/prometheus are loaded, evaluate without error, and none fires
        # for a healthy replica (ModelmedicAbsent may be pending only before the first scrape)
        def rules_quiet():
            groups = prometheus.get("/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            evaluated = rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
            return rules if evaluated and all(r["state"] == "inactive" for r in rules) else None
        rules = await prometheus.until("the alert rules evaluated, all inactive", rules_quiet)
        assert len(rules) == len(yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]), rules
        assert all(r["health"] == "ok" for r in rules), rules

        # every Grafana query runs against the real metrics; the core ones return data
        dashboard = json.loads(DASHBOARD.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$job", ".*")
                prometheus.query(expr)  # a query error fails here
                if panel["title"] in {"Events/s by outcome", "Dead letters/s by reason", "Replicas up", "Events/s"}:
                    await prometheus.until(f"data for panel {panel['title']!r} ({expr})", lambda: prometheus.query(expr))

        # a replica that stops is seen at once: ModelmedicDown goes pending
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 0, log.read_text()[-3000:]
        await prometheus.until("ModelmedicDown pending", lambda: prometheus.query(
            'ALERTS{alertname="ModelmedicDown", alertstate="pending"}'))
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
        if prometheus is not None:
            prometheus.stop()
