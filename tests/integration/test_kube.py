"""modelmedic's Kubernetes client against a real API server, acting as its own least-privilege identity.

Deployments roll out through the real Deployment and ReplicaSet controllers; KWOK plays the
kubelet, so pods get scheduled, run and turn Ready.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fixtures_kube import ROLLOUT_TIMEOUT_S, KubeNamespace, model_deployment
from kubernetes import client

from modelmedic.errors import KubeError, KubeForbidden
from modelmedic.kube import RESTARTED_AT_ANNOTATION, VERSION_ENV, VERSION_LABEL, KubeClient, call_with_retries

pytestmark = pytest.mark.integration


def pod_versions(ns: KubeNamespace, name: str) -> set[tuple[str, str, str]]:
    """(label, env, image) of every live pod: what the pods really run."""
    return {
        (
            pod.metadata.labels[VERSION_LABEL],
            next(var.value for var in pod.spec.containers[0].env if var.name == VERSION_ENV),
            pod.spec.containers[0].image,
        )
        for pod in ns.pods(name)
    }


def ready(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def test_scale_out_2_to_5_brings_5_ready_pods_on_kwok_nodes(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    name = await kube_namespace.create_model(replicas=2)
    assert await kube.get_replicas(kube_namespace.name, name) == 2

    await kube.set_replicas(kube_namespace.name, name, 5)
    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)

    assert (state.replicas, state.ready_replicas) == (5, 5)
    assert await kube.get_replicas(kube_namespace.name, name) == 5
    pods = kube_namespace.pods(name)
    assert len(pods) == 5 and all(ready(pod) for pod in pods)
    assert all(pod.spec.node_name.startswith("kwok-node-") for pod in pods)


async def test_set_version_then_rollback_returns_to_the_previous_version(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace.name
    name = await kube_namespace.create_model(version="v1", replicas=3)
    assert await kube.get_version(ns, name) == "v1"

    await kube.set_version(ns, name, "v2", image=f"registry.local/models/{name}:v2")
    upgraded = await kube.wait_rollout(ns, name, ROLLOUT_TIMEOUT_S)
    assert (upgraded.version, upgraded.ready_replicas, upgraded.revision) == ("v2", 3, 2)
    assert pod_versions(kube_namespace, name) == {("v2", "v2", f"registry.local/models/{name}:v2")}

    assert await kube.rollback(ns, name) == "v1"
    rolled_back = await kube.wait_rollout(ns, name, ROLLOUT_TIMEOUT_S)

    assert await kube.get_version(ns, name) == "v1"
    assert (rolled_back.version, rolled_back.ready_replicas, rolled_back.revision) == ("v1", 3, 3)
    assert rolled_back.image == f"registry.local/models/{name}:v1"
    assert pod_versions(kube_namespace, name) == {("v1", "v1", f"registry.local/models/{name}:v1")}


async def test_rollback_without_a_previous_revision_says_so(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    name = await kube_namespace.create_model()
    with pytest.raises(KubeError, match="no revision before 1 to roll back to"):
        await kube.rollback(kube_namespace.name, name)


async def test_restart_replaces_every_pod_and_keeps_the_version(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace.name
    name = await kube_namespace.create_model(version="v7", replicas=2)
    before = {pod.metadata.name for pod in kube_namespace.pods(name)}

    await kube.restart(ns, name)
    state = await kube.wait_rollout(ns, name, ROLLOUT_TIMEOUT_S)

    after = kube_namespace.pods(name)
    assert (state.version, state.ready_replicas, state.revision) == ("v7", 2, 2)
    assert len(after) == 2 and before.isdisjoint(pod.metadata.name for pod in after)
    assert all(RESTARTED_AT_ANNOTATION in (pod.metadata.annotations or {}) for pod in after)


async def test_list_deployments_filters_by_label(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    await kube_namespace.create_model("model-a", version="v1", replicas=1)
    await kube_namespace.create_model("model-b", version="v3", replicas=1)

    everything = await kube.list_deployments(kube_namespace.name)
    only_b = await kube.list_deployments(kube_namespace.name, "app=model-b")

    assert sorted((d.name, d.version) for d in everything) == [("model-a", "v1"), ("model-b", "v3")]
    assert [(d.name, d.version, d.ready_replicas) for d in only_b] == [("model-b", "v3", 1)]


# ---------------------------------------------------------------- RBAC: exactly what the playbooks need

def hpa(name: str) -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
        },
    }


def watch_once(list_call: Callable[..., object], *args: str) -> None:
    """Open a watch and close it: raises when the watch verb is not granted."""
    response = list_call(*args, watch=True, timeout_seconds=1, _preload_content=False)
    response.release_conn()


async def test_the_service_identity_has_every_verb_its_playbooks_use(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace.name
    name = await kube_namespace.create_model()
    client.AutoscalingV2Api(kube_namespace.admin.api_client).create_namespaced_horizontal_pod_autoscaler(ns, hpa(name))
    apps, core = client.AppsV1Api(kube.api_client), client.CoreV1Api(kube.api_client)

    await kube.set_hpa_bounds(ns, name, 2, 8)
    assert await kube.get_hpa_bounds(ns, name) == (2, 8)
    await kube.record_event(ns, name, "ModelmedicScaledOut", "scaled 2 -> 3: p99 latency anomaly")
    await kube.set_replicas(ns, name, 3)
    allowed = {
        "deployments list": lambda: apps.list_namespaced_deployment(ns),
        "replicasets list": lambda: apps.list_namespaced_replica_set(ns),
    }
    for what, call in allowed.items():
        await call_with_retries(what, call, kube.retry)

    events = client.CoreV1Api(kube_namespace.admin.api_client).list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
    assert any(e.reason == "ModelmedicScaledOut" and e.source.component == "modelmedic" for e in events.items)


async def test_the_service_identity_is_denied_everything_else(kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    ns = kube_namespace.name
    name = await kube_namespace.create_model()
    other = f"{ns}-other"
    client.CoreV1Api(kube_namespace.admin.api_client).create_namespace({"metadata": {"name": other}})
    apps, core = client.AppsV1Api(kube.api_client), client.CoreV1Api(kube.api_client)
    admin_apps = client.AppsV1Api(kube_namespace.admin.api_client)
    try:
        denied = {
            "delete deployment": lambda: apps.delete_namespaced_deployment(name, ns),
            "get secrets": lambda: core.list_namespaced_secret(ns),
            "create deployment here": lambda: apps.create_namespaced_deployment(ns, model_deployment("x", "v1", 1)),
            "create deployment in another namespace": lambda: apps.create_namespaced_deployment(other, model_deployment("x", "v1", 1)),
            "delete pods": lambda: core.delete_collection_namespaced_pod(ns),
            "delete replicasets": lambda: apps.delete_collection_namespaced_replica_set(ns),
            "list nodes": lambda: core.list_node(),
            "list namespaces": lambda: core.list_namespace(),
            # granted once and never used (issue 17): the client polls, patches, lists ReplicaSets
            "deployments watch": lambda: watch_once(apps.list_namespaced_deployment, ns),
            "deployments update": lambda: apps.replace_namespaced_deployment(name, ns, admin_apps.read_namespaced_deployment(name, ns)),
            "deployments/scale update": lambda: apps.replace_namespaced_deployment_scale(name, ns, admin_apps.read_namespaced_deployment_scale(name, ns)),
            "replicasets watch": lambda: watch_once(apps.list_namespaced_replica_set, ns),
            "replicasets get": lambda: apps.read_namespaced_replica_set(admin_apps.list_namespaced_replica_set(ns).items[0].metadata.name, ns),
            "pods list": lambda: core.list_namespaced_pod(ns),
            "pods watch": lambda: watch_once(core.list_namespaced_pod, ns),
            "pods get": lambda: core.read_namespaced_pod(kube_namespace.pods(name)[0].metadata.name, ns),
            "horizontalpodautoscalers list": lambda: client.AutoscalingV2Api(kube.api_client).list_namespaced_horizontal_pod_autoscaler(ns),
        }
        for what, call in denied.items():
            with pytest.raises(KubeForbidden, match="deploy/rbac/role.yaml"):
                await call_with_retries(what, call, kube.retry)
        # the Role is per namespace: no grant, no scaling
        with pytest.raises(KubeForbidden, match=f"patch deployments/scale {other}/{name}"):
            await kube.set_replicas(other, name, 3)
        assert len(kube_namespace.pods(name)) == 2, "the denied calls changed nothing"
    finally:
        client.CoreV1Api(kube_namespace.admin.api_client).delete_namespace(other)
