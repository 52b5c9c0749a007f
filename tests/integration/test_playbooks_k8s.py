"""The built-in playbooks against a real API server, acting as modelmedic's least-privilege identity.

Each playbook is found the way the service finds it (the project's entry points) and run
through :func:`run_playbook`, so registration, params validation, RBAC and the real
Deployment controller are all on the path.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from fixtures_kube import ROLLOUT_TIMEOUT_S, KubeNamespace
from kubernetes import client

from modelmedic.kube import KubeClient, rollout_complete
from modelmedic.registry import Registry
from modelmedic.remediations import (
    LAST_ACTION_ANNOTATION,
    Outcome,
    PlaybookContext,
    PlaybookRegistry,
    Target,
    idempotency_key,
    run_playbook,
)
from modelmedic.remediations.rollback import ROLLED_BACK_TO

pytestmark = pytest.mark.integration

REPORT = {"latency_p50_ms": 10, "latency_p95_ms": 25, "latency_p99_ms": 40, "throughput_rps": 250,
          "error_rate": 0.002, "quality": {"auc": 0.91}, "reference": {"mean_prediction": 0.1}}


@pytest.fixture(scope="module")
def playbooks() -> PlaybookRegistry:
    registry = PlaybookRegistry()
    assert set(registry.load_entry_points()) >= {"scale-out", "rollback", "restart"}
    return registry


def context(kube: KubeClient, ns: KubeNamespace, name: str, version: str, playbook: str, *, attempt: int = 0,
            dry_run: bool = False, registry: Registry | None = None, clock=time.time) -> PlaybookContext:
    target = Target(model=name, version=version, role="production", namespace=ns.name, deployment=name)
    return PlaybookContext(
        k8s=kube, target=target, incident_id=f"inc-{name}", anomaly_class="latency", kind="latency",
        idempotency_key=idempotency_key(f"inc-{name}", playbook, attempt), dry_run=dry_run, registry=registry,
        clock=clock,
    )


async def run(playbooks: PlaybookRegistry, name: str, ctx: PlaybookContext, **params: object) -> Outcome:
    return await run_playbook(playbooks.get(name), ctx, params)


def annotations(ns: KubeNamespace, name: str) -> dict[str, str]:
    deployment = client.AppsV1Api(ns.admin.api_client).read_namespaced_deployment(name, ns.name)
    return deployment.metadata.annotations or {}


def ready_pods(ns: KubeNamespace, name: str) -> int:
    return sum(
        pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        for pod in ns.pods(name)
    )


# ---------------------------------------------------------------- scale-out

async def test_scale_out_2_to_3_brings_a_third_ready_pod_and_a_replay_does_nothing(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(replicas=2)
    ctx = context(kube, kube_namespace, name, "v1", "scale-out")

    outcome = await run(playbooks, "scale-out", ctx, step=1, max_replicas=5)
    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)

    assert (outcome.status, outcome.message) == ("done", "scaled 2 -> 3 through the Deployment")
    assert (state.replicas, state.ready_replicas, ready_pods(kube_namespace, name)) == (3, 3, 3)
    assert annotations(kube_namespace, name)[LAST_ACTION_ANNOTATION] == ctx.idempotency_key

    replay = await run(playbooks, "scale-out", context(kube, kube_namespace, name, "v1", "scale-out"), step=1, max_replicas=5)
    assert (replay.status, replay.message) == ("skipped", "already done (a replay of the same run)")
    assert await kube.get_replicas(kube_namespace.name, name) == 3


async def test_scale_out_waits_out_its_stabilization_window_and_stops_at_the_ceiling(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(replicas=2)
    now = time.time()
    first = await run(playbooks, "scale-out", context(kube, kube_namespace, name, "v1", "scale-out", clock=lambda: now),
                      step=2, max_replicas=5, stabilization_s=300)
    assert first.details == {"before": 2, "after": 4, "via": "deployment"}

    def attempt(n: int, at: float) -> PlaybookContext:
        return context(kube, kube_namespace, name, "v1", "scale-out", attempt=n, clock=lambda: at)

    early = await run(playbooks, "scale-out", attempt(1, now + 299), step=2, max_replicas=5, stabilization_s=300)
    assert (early.status, early.message) == ("skipped", "scaled 299s ago; stabilizing for 300s")
    later = await run(playbooks, "scale-out", attempt(2, now + 301), step=2, max_replicas=5, stabilization_s=300)
    assert (later.status, later.details["after"]) == ("done", 5)
    ceiling = await run(playbooks, "scale-out", attempt(3, now + 700), step=2, max_replicas=5, stabilization_s=300)
    assert (ceiling.status, ceiling.message) == ("skipped", "already at the ceiling (5 replicas, max 5)")

    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)
    assert (state.replicas, state.ready_replicas) == (5, 5)


async def test_scale_out_raises_the_hpa_floor_when_the_deployment_has_an_hpa(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(replicas=2)
    client.AutoscalingV2Api(kube_namespace.admin.api_client).create_namespaced_horizontal_pod_autoscaler(
        kube_namespace.name,
        {"metadata": {"name": name}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": 3}},
    )

    outcome = await run(playbooks, "scale-out", context(kube, kube_namespace, name, "v1", "scale-out"), step=5, max_replicas=10)

    assert (outcome.status, outcome.message) == ("done", "scaled 2 -> 3 through HPA minReplicas 1 -> 3")
    assert await kube.get_hpa_bounds(kube_namespace.name, name) == (3, 3)
    assert annotations(kube_namespace, name)[LAST_ACTION_ANNOTATION] == idempotency_key(f"inc-{name}", "scale-out", 0)


async def test_scale_out_dry_run_changes_nothing(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(replicas=2)
    outcome = await run(playbooks, "scale-out", context(kube, kube_namespace, name, "v1", "scale-out", dry_run=True))
    assert (outcome.status, outcome.message) == ("dry_run", "would scale 2 -> 3 through the Deployment")
    assert await kube.get_replicas(kube_namespace.name, name) == 2
    assert LAST_ACTION_ANNOTATION not in annotations(kube_namespace, name)


# ---------------------------------------------------------------- rollback

def image(name: str, version: str) -> str:
    return f"registry.local/models/{name}@sha256:{hashlib.sha256(version.encode()).hexdigest()}"


def pinned(name: str, version: str) -> dict[str, str]:
    """The artifact environment of ``version``: what the registry records for it below."""
    return {"MODEL_ARTIFACT": f"s3://models/{name}/{version}", "MODEL_DIGEST": "sha256:" + hashlib.sha256(
        f"artifact {version}".encode()).hexdigest()}


def pod_template(ns: KubeNamespace, name: str) -> tuple[str, dict[str, str], int | str]:
    """Image, environment (MODEL_VERSION left out) and maxUnavailable of the Deployment's pod template."""
    d = client.AppsV1Api(ns.admin.api_client).read_namespaced_deployment(name, ns.name)
    container = d.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env or [] if e.name != "MODEL_VERSION"}
    return container.image, env, d.spec.strategy.rolling_update.max_unavailable


async def deploy(kube: KubeClient, ns: KubeNamespace, name: str, version: str) -> None:
    """What a release puts in the pod template (the registry's record), outside modelmedic deploy."""
    await kube.set_version(ns.name, name, version, image=image(name, version), env=pinned(name, version))
    await kube.wait_rollout(ns.name, name, ROLLOUT_TIMEOUT_S)


def model_registry(path: Path, name: str, certified: tuple[str, ...], registered: tuple[str, ...] = ()) -> Registry:
    registry = Registry.init(path)
    registry.register_model(name, description="test model", owners=["team"],
                            interface={"input": {"type": "object"}, "output": {"type": "number"}})
    for version in (*certified, *registered):
        env = pinned(name, version)
        registry.add_version(name, version, "notes", env["MODEL_ARTIFACT"], env["MODEL_DIGEST"], image=image(name, version))
    for version in certified:
        registry.attach_certification(name, version, REPORT)
        registry.promote(name, version, "certified")
    return registry


async def fewest_available_until_rolled_out(ns: KubeNamespace, name: str) -> int:
    """Read the Deployment back to back until its rollout completes; the fewest available replicas seen."""
    apps = client.AppsV1Api(ns.admin.api_client)
    deadline, fewest = time.monotonic() + ROLLOUT_TIMEOUT_S, None
    while time.monotonic() < deadline:
        d = await asyncio.to_thread(apps.read_namespaced_deployment, name, ns.name)
        available = d.status.available_replicas or 0
        fewest = available if fewest is None else min(fewest, available)
        if rollout_complete(d):
            return fewest
    raise AssertionError(f"{ns.name}/{name} did not roll out in {ROLLOUT_TIMEOUT_S}s")


async def test_rollback_of_a_fresh_release_restores_the_previous_revision_once(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(version="v1", replicas=2)
    await deploy(kube, kube_namespace, name, "v1")
    await deploy(kube, kube_namespace, name, "v2")

    outcome = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2", "rollback"), require_certified=False)
    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)

    assert (outcome.status, outcome.message) == ("done", "rolled v2 back to v1 (previous revision)")
    assert (state.version, state.ready_replicas) == ("v1", 2)
    assert pod_template(kube_namespace, name) == (image(name, "v1"), pinned(name, "v1"), 0)
    assert annotations(kube_namespace, name)[ROLLED_BACK_TO] == "v1"

    # v1 now misbehaving too: rolling back again would bring v2 back, so rollback leaves it to a person.
    again = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v1", "rollback", attempt=1),
                      require_certified=False)
    assert (again.status, again.message[:40]) == ("skipped", "v1 is itself the result of a rollback: r")
    stale = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2", "rollback", attempt=2),
                      require_certified=False)
    assert (stale.status, stale.message) == ("skipped", "v2 is not deployed any more (v1 is): nothing to roll back")
    assert await kube.get_version(kube_namespace.name, name) == "v1"


async def test_rollback_without_a_registry_leaves_the_release_to_a_person(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(version="v1", replicas=1)
    await deploy(kube, kube_namespace, name, "v2")
    outcome = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2", "rollback"))
    assert outcome.status == "skipped" and "cannot be shown to be certified" in outcome.message
    assert pod_template(kube_namespace, name)[0] == image(name, "v2")


async def test_rollback_leaves_a_release_alone_once_it_is_no_longer_recent(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(version="v1", replicas=1)
    await deploy(kube, kube_namespace, name, "v2")
    two_hours_later = time.time() + 7200

    outcome = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2", "rollback", clock=lambda: two_hours_later))

    assert outcome.status == "skipped" and "longer than recent_s=3600: not a fresh release" in outcome.message
    assert await kube.get_version(kube_namespace.name, name) == "v2"


async def test_rollback_via_the_registry_restores_image_artifact_and_version_and_keeps_serving(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry, tmp_path: Path
) -> None:
    name = await kube_namespace.create_model(version="v1.0.0", replicas=4)  # the default maxUnavailable 25% is 1 pod
    registry = model_registry(tmp_path / "registry", name, ("v1.0.0", "v1.1.0", "v1.2.0"))
    registry.promote(name, "1.0.0", "stable")
    registry.promote(name, "1.1.0", "stable")
    await deploy(kube, kube_namespace, name, "v1.1.0")
    await deploy(kube, kube_namespace, name, "v1.2.0")  # deployed, never promoted: v1.1.0 is the stable one

    ctx = context(kube, kube_namespace, name, "v1.2.0", "rollback", registry=registry)
    outcome = await run(playbooks, "rollback", ctx)
    fewest_available = await fewest_available_until_rolled_out(kube_namespace, name)
    state = await kube.get_deployment(kube_namespace.name, name)

    assert (outcome.status, outcome.details["after"], outcome.details["source"]) == ("done", "v1.1.0", "registry")
    assert (state.version, state.ready_replicas) == ("v1.1.0", 4)
    assert pod_template(kube_namespace, name) == (image(name, "v1.1.0"), pinned(name, "v1.1.0"), 0)
    assert fewest_available == 4, "every Ready pod of the bad version served until its replacement was Ready"


async def test_rollback_via_the_previous_revision_only_to_a_certified_version(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry, tmp_path: Path
) -> None:
    name = await kube_namespace.create_model(version="v0.9.0", replicas=2)
    registry = model_registry(tmp_path / "registry", name, ("v1.0.0",), registered=("v0.9.0", "v2.0.0"))
    assert registry.stable_versions(name).stable is None  # the registry names no target: the revision path
    await deploy(kube, kube_namespace, name, "v0.9.0")
    await deploy(kube, kube_namespace, name, "v2.0.0")
    refused = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2.0.0", "rollback", registry=registry))
    assert refused.status == "skipped"
    assert refused.details["refused"] == f"{name}@v0.9.0 was never certified (it has no certification report)"
    assert pod_template(kube_namespace, name)[0] == image(name, "v2.0.0")

    await deploy(kube, kube_namespace, name, "v1.0.0")
    await deploy(kube, kube_namespace, name, "v2.0.0")  # a new revision over certified v1.0.0
    outcome = await run(playbooks, "rollback", context(kube, kube_namespace, name, "v2.0.0", "rollback", attempt=1,
                                                       registry=registry))
    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)
    assert (outcome.status, outcome.details["after"], outcome.details["source"]) == ("done", "v1.0.0", "previous revision")
    assert (state.version, state.ready_replicas) == ("v1.0.0", 2)
    assert pod_template(kube_namespace, name) == (image(name, "v1.0.0"), pinned(name, "v1.0.0"), 0)


# ---------------------------------------------------------------- restart

async def test_restart_replaces_the_pods_once(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(version="v3", replicas=2)
    before = {pod.metadata.name for pod in kube_namespace.pods(name)}
    ctx = context(kube, kube_namespace, name, "v3", "restart")

    outcome = await run(playbooks, "restart", ctx)
    state = await kube.wait_rollout(kube_namespace.name, name, ROLLOUT_TIMEOUT_S)
    after = {pod.metadata.name for pod in kube_namespace.pods(name)}

    assert outcome.status == "done" and (state.version, state.ready_replicas, state.revision) == ("v3", 2, 2)
    assert len(after) == 2 and before.isdisjoint(after)
    replay = await run(playbooks, "restart", context(kube, kube_namespace, name, "v3", "restart"))
    assert replay.status == "skipped"
    assert (await kube.get_deployment(kube_namespace.name, name)).revision == 2


# ---------------------------------------------------------------- a plugin's playbook, as its author would test it

async def test_the_example_plugins_playbook_annotates_the_real_deployment(
    kube: KubeClient, kube_namespace: KubeNamespace, playbooks: PlaybookRegistry
) -> None:
    name = await kube_namespace.create_model(version="v4", replicas=1)
    ctx = context(kube, kube_namespace, name, "v4", "annotate-deployment")

    outcome = await run(playbooks, "annotate-deployment", ctx, key="acme.example/on-call")

    assert outcome.status == "done"
    assert annotations(kube_namespace, name)["acme.example/on-call"] == f"inc-{name}: latency/latency on {name} v4"
