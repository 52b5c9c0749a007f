"""The chart's conventions on the real API server (tests/fixtures_kube.py: kube-apiserver, the
controller-manager, the scheduler and KWOK), with the real helm.

What KWOK makes of it, and so what passes here: KWOK runs no containers. Its pod stages
(deploy/local/kube.py, KWOK's ``pod-ready`` and ``pod-complete``) mark a scheduled pod Running
and Ready, and a Running pod owned by a Job Succeeded with exit code 0. So ``helm test`` here
exercises everything but the command: the hook Job is accepted by the API server, its pod is
placed on a KWOK node by the real scheduler with the chart's nodeSelector and tolerations, the
Job controller sees it succeed and marks the Job Complete, and helm reports the test passed.
The command itself (files/readyz.py against /readyz) is run in tests/integration/test_chart.py
against a real HTTP server: 200 passes, 503 or nothing listening fails.

Also exercised for real: the API server validates the NetworkPolicy, the extra volumes from a
Secret, envFrom from a Secret and a ConfigMap, and the topology spread constraints (the
scheduler spreads the replicas over the three nodes); the values schema refuses a bad value
before anything reaches the cluster.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.parse
import uuid

import pytest
from test_deploy_on_cluster import installable_chart, run_helm, values_file, wait_ready

from deploy.helm import tool as helm_tool
from deploy.local import kube as local_kube

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_tool.ensure_helm()


def create(stack: local_kube.KubeStack, namespace: str, kind: str, name: str, data: dict) -> None:
    """A Secret or ConfigMap with ``data`` as its (string) contents."""
    field = "stringData" if kind == "Secret" else "data"
    local_kube.api(stack, "POST", f"/api/v1/namespaces/{namespace}/{kind.lower()}s", json.dumps(
        {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, field: data}))


async def test_helm_test_passes_and_the_conventions_are_accepted_on_the_api_server(kube_stack, helm, tmp_path):
    namespace = f"mmc-{uuid.uuid4().hex[:8]}"
    local_kube.ensure_namespace(kube_stack, namespace)
    create(kube_stack, namespace, "Secret", "kafka-ca", {"ca.crt": "-----BEGIN CERTIFICATE-----\n"})
    create(kube_stack, namespace, "Secret", "kafka-client", {"MODELMEDIC_KAFKA__SASL_PASSWORD": "x" * 16})
    create(kube_stack, namespace, "ConfigMap", "overrides", {"MODELMEDIC_DETECTION__THRESHOLD": "0.999"})
    values = {
        "replicaCount": 3,
        "nodeSelector": local_kube.KWOK_POD_PLACEMENT["nodeSelector"],
        "tolerations": local_kube.KWOK_POD_PLACEMENT["tolerations"],
        "rbac": {"namespaces": [namespace]},
        "policy": {"targets": {"namespace": namespace}},
        "config": {"kafka": {"bootstrap_servers": "kafka.kafka:9093", "security_protocol": "SSL",
                             "ssl_cafile": "/etc/ssl/kafka/ca.crt"}},
        "extraVolumes": [{"name": "kafka-ca", "secret": {"secretName": "kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}],
        "extraVolumeMounts": [{"name": "kafka-ca", "mountPath": "/etc/ssl/kafka", "readOnly": True}],
        "extraEnvFrom": [{"secretRef": {"name": "kafka-client"}}, {"configMapRef": {"name": "overrides"}}],
        "networkPolicy": {"enabled": True, "ingress": {"from": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]},
                          "egress": {"apiServer": {"ports": [443, 6443], "to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}]}}},
    }
    chart = installable_chart(tmp_path)

    # the schema refuses a bad value before anything reaches the cluster
    bad = subprocess.run([helm, "install", "bad", chart, "--namespace", namespace, "--kubeconfig", kube_stack.admin_kubeconfig,
                          "--set", "replicaCount=two"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "at '/replicaCount': got string, want integer" in bad.stderr

    await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "install", "mm", chart, "-f", values_file(values, tmp_path),
                            "--namespace", namespace, "--wait", "--timeout", "90s")
    await wait_ready(kube_stack, namespace, "mm-modelmedic")
    pods = local_kube.api(kube_stack, "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector="
                          + urllib.parse.quote("app.kubernetes.io/name=modelmedic"))["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) == 3, "the default topology spread puts 3 replicas on 3 nodes"
    assert local_kube.api(kube_stack, "GET", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/mm-modelmedic")

    out = await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "test", "mm", "--namespace", namespace, "--timeout", "90s")
    assert "TEST SUITE:     mm-modelmedic-test-readyz" in out and "Phase:          Succeeded" in out, out
    job = local_kube.api(kube_stack, "GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/mm-modelmedic-test-readyz")
    assert job["status"].get("succeeded") == 1
    (test_pod,) = local_kube.api(kube_stack, "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector="
                                 + urllib.parse.quote("app.kubernetes.io/component=helm-test"))["items"]
    assert test_pod["spec"]["nodeName"].startswith("kwok-node-") and test_pod["status"]["phase"] == "Succeeded"

    await asyncio.to_thread(run_helm, helm, kube_stack, tmp_path, "uninstall", "mm", "--namespace", namespace, "--wait")
    local_kube.api(kube_stack, "DELETE", f"/api/v1/namespaces/{namespace}")
