"""deploy/rbac/admission-policy.yaml on the real API server: modelmedic's own patches go through,
a patch by its identity that would run something else (a Secret mounted, another ServiceAccount,
an image not pinned by digest) is denied with the policy's message.

The policy and its binding are cluster-scoped: applied once for this module, deleted after.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from fixtures_kube import KubeNamespace
from kubernetes import client

from deploy.local import kube as local_kube
from modelmedic.errors import KubeError
from modelmedic.kube import KubeClient, call_with_retries

pytestmark = pytest.mark.integration

POLICY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "admission-policy.yaml"
POLICY, BINDING = (doc for doc in yaml.safe_load_all(POLICY_FILE.read_text()) if doc)
NAME = POLICY["metadata"]["name"]
API = "/apis/admissionregistration.k8s.io/v1"
DIGEST = "@sha256:" + "ab" * 32
DENIED = f"ValidatingAdmissionPolicy '{NAME}' with binding '{NAME}' denied request"
LOADED_TIMEOUT_S = 30.0


def _paths() -> dict[str, str]:
    return {"ValidatingAdmissionPolicy": f"{API}/validatingadmissionpolicies/{NAME}",
            "ValidatingAdmissionPolicyBinding": f"{API}/validatingadmissionpolicybindings/{NAME}"}


def _until(what: str, check: Callable[[], bool]) -> None:
    """Poll ``check`` (an API read) until it holds; the API server loads policies asynchronously."""
    deadline = time.monotonic() + LOADED_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not true after {LOADED_TIMEOUT_S:.0f}s")


def _type_checked(stack: local_kube.KubeStack) -> bool:
    policy = local_kube.api(stack, "GET", _paths()["ValidatingAdmissionPolicy"])
    return policy.get("status", {}).get("observedGeneration") == policy["metadata"]["generation"]


@pytest.fixture(scope="module")
def policy(kube_stack: local_kube.KubeStack) -> Iterator[dict]:
    """The shipped policy and binding, applied as the admin; the policy's status (its type check) once observed."""
    paths = _paths()
    for document in (POLICY, BINDING):
        local_kube.api(kube_stack, "PATCH", paths[document["kind"]] + "?fieldManager=modelmedic-test&force=true",
                       json.dumps(document), "application/apply-patch+yaml")
    try:
        _until("the policy's type check", lambda: _type_checked(kube_stack))
        yield local_kube.api(kube_stack, "GET", paths["ValidatingAdmissionPolicy"])
    finally:
        for path in paths.values():
            local_kube.api(kube_stack, "DELETE", path)


@pytest.fixture
async def model(policy: dict, kube: KubeClient, kube_namespace: KubeNamespace) -> str:
    """A model Deployment pinned by digest (revision 2, set by the admin), the policy enforcing for modelmedic."""
    name = await kube_namespace.create_model(version="v1")
    apps = client.AppsV1Api(kube_namespace.admin.api_client)
    image = f"registry.local/models/{name}{DIGEST}"
    apps.patch_namespaced_deployment(name, kube_namespace.name, {"spec": {"template": {"spec": {
        "containers": [{"name": "model", "image": image}]}}}})
    await kube_namespace.admin.wait_rollout(kube_namespace.name, name, 60)
    # enforcement starts once the API server's policy informer has it: a denied dry run proves it
    mine = client.AppsV1Api(kube.api_client)
    _until("the policy enforcing", lambda: _denied(lambda: mine.patch_namespaced_deployment(
        name, kube_namespace.name, _pod_patch({"serviceAccountName": "default"}), dry_run="All")))
    return name


def _denied(call: Callable[[], object]) -> bool:
    try:
        call()
    except client.ApiException as error:
        return error.status == 422 and DENIED in (error.body or "")
    return False


def _pod_patch(spec: dict) -> dict:
    return {"spec": {"template": {"spec": spec}}}


def _first_container(spec: dict) -> dict:
    return _pod_patch({"containers": [{"name": "model", **spec}]})


def test_the_policy_type_checks_against_the_servers_schemas(policy: dict) -> None:
    """A misspelled field would compare nothing: the API server checks every expression against Deployment's schema."""
    assert not policy["status"].get("typeChecking", {}).get("expressionWarnings"), policy["status"]


def _properties(schemas: dict, name: str) -> set[str]:
    return set(schemas[f"io.k8s.api.{name}"]["properties"])


def test_the_policy_compares_every_field_it_does_not_allow_to_change(kube_stack: local_kube.KubeStack) -> None:
    """Field by field, so a field a new Kubernetes adds to PodSpec or Container must be added here too."""
    schemas = local_kube.api(kube_stack, "GET", "/openapi/v3/apis/apps/v1")["components"]["schemas"]
    text = POLICY_FILE.read_text()

    def compared(prefix: str) -> set[str]:
        return {field for field in _properties(schemas, "core.v1.PodSpec") | _properties(schemas, "core.v1.Container")
                | _properties(schemas, "apps.v1.DeploymentSpec") if f"{prefix}.?{field} == " in text}

    assert _properties(schemas, "core.v1.PodSpec") - compared("variables.new") == {"containers"}
    # the image is compared too: it may differ only when the new one matches imagePatterns
    assert _properties(schemas, "core.v1.Container") - compared("variables.newFirst") == {"env"}
    assert _properties(schemas, "apps.v1.DeploymentSpec") - compared("object.spec") == {"replicas", "strategy", "template"}


async def test_modelmedics_own_patches_are_allowed(model: str, kube: KubeClient, kube_namespace: KubeNamespace) -> None:
    """scale-out (replicas + marks), a release/registry rollback (image, env, labels), restart, previous-revision undo."""
    ns = kube_namespace.name
    await kube.annotate(ns, model, {"modelmedic.io/last-action": "k1", "modelmedic.io/last-scale-at": "now"}, replicas=3)
    await kube.set_version(ns, model, "v2", image=f"registry.local/models/{model}@sha256:{'cd' * 32}",
                           env={"MODEL_ARTIFACT": "s3://models/v2", "MODEL_DIGEST": "sha256:" + "ef" * 32},
                           pod_annotations={"modelmedic.io/artifact": "s3://models/v2"})
    await kube.wait_rollout(ns, model, 60)  # revision 3 gets its ReplicaSet before the restart makes revision 4
    await kube.restart(ns, model)
    await kube.wait_rollout(ns, model, 60)
    assert await kube.rollback(ns, model) == "v2"  # the revision before the restart
    await kube.annotate(ns, model, {"modelmedic.io/rolled-back-to": "v2"})
    state = await kube.wait_rollout(ns, model, 60)
    assert (state.replicas, state.version, state.image) == (3, "v2", f"registry.local/models/{model}@sha256:{'cd' * 32}")


@pytest.mark.parametrize("what, patch, message", [
    ("mount a Secret", _pod_patch({"volumes": [{"name": "loot", "secret": {"secretName": "db-credentials"}}]}),
     "may not change a pod's volumes, serviceAccountName"),
    ("run as another ServiceAccount", _pod_patch({"serviceAccountName": "admin"}),
     "may not change a pod's volumes, serviceAccountName"),
    ("set an image not pinned by digest", _first_container({"image": "attacker.example/miner:latest"}),
     "may set the model image only to one pinned by digest"),
    ("change the command", _first_container({"command": ["/bin/sh", "-c", "curl evil"]}),
     "may change only the image and the env vars MODEL_VERSION"),
    ("read a Secret into MODEL_VERSION", _first_container({"env": [{"name": "MODEL_VERSION", "value": None, "valueFrom": {
        "secretKeyRef": {"name": "db-credentials", "key": "password"}}}]}), "as plain values (no valueFrom)"),
    ("add a sidecar", _pod_patch({"containers": [{"name": "sidecar", "image": "busybox" + DIGEST}]}),
     "may not add, remove or change containers other than the first"),
    ("relabel the pods", {"spec": {"template": {"metadata": {"labels": {"team": "attacker"}}}}},
     "only modelmedic.io/ labels and annotations"),
])
async def test_a_patch_that_runs_something_else_is_denied(model: str, kube: KubeClient, kube_namespace: KubeNamespace,
                                                         what: str, patch: dict, message: str) -> None:
    apps = client.AppsV1Api(kube.api_client)
    with pytest.raises(KubeError, match=f"HTTP 422: .*{re.escape(DENIED)}: modelmedic .*{re.escape(message)}"):
        await call_with_retries(what, lambda: apps.patch_namespaced_deployment(model, kube_namespace.name, patch), kube.retry)
    # the admin is not restricted: the policy matches modelmedic's identity only
    admin = client.AppsV1Api(kube_namespace.admin.api_client)
    admin.patch_namespaced_deployment(model, kube_namespace.name, patch, dry_run="All")
