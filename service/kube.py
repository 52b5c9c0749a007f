"""The Kubernetes calls modelmedic's playbooks and deploy tools make, as one async client.

It wraps the official ``kubernetes`` package, whose calls block, in
``asyncio.to_thread`` so a slow API server never stalls the event loop, and
gives every call the same two things a remediation needs under pressure:

- one retry policy: 409 conflicts, 429 throttling, 5xx and timeouts are retried
  with exponential backoff and jitter, a bounded number of times, re-reading
  the object each time (an incident is exactly when the API server is busy);
- one error vocabulary (``modelmedic.errors``): 403 raises ``KubeForbidden`` at
  once, naming the verb and resource, because retrying a missing RBAC rule
  only delays the page.

A model's version lives on its Deployment's pod template, as the label
``modelmedic.io/version`` and the env var ``MODEL_VERSION`` of the first
container, so every pod says which version it serves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modelmedic.errors import KubeError, KubeForbidden, KubeNotFound, KubeRolloutTimeout, KubeUnavailable
from modelmedic.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

VERSION_LABEL = "modelmedic.io/version"
VERSION_ENV = "MODEL_VERSION"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# The annotations modelmedic writes on a model's Deployment: playbooks' idempotency and cooldown
# marks and the release tools' record of what they did. Kept here, with the Deployment's other
# names, because both the playbooks and the release tools read them.
LAST_ACTION_ANNOTATION = "modelmedic.io/last-action"
LAST_SCALE_AT = "modelmedic.io/last-scale-at"
DEPLOYED_AT = "modelmedic.io/deployed-at"
ROLLED_BACK_TO = "modelmedic.io/rolled-back-to"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
RETRYABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError)


@dataclass(frozen=True)
class DeploymentState:
    """What a playbook needs to know about a model's Deployment."""

    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    updated_replicas: int
    version: str | None
    image: str | None
    revision: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    """The Deployment's own annotations: where playbooks keep their idempotency and cooldown marks."""


def _api_message(error: ApiException) -> str:
    """The API server's own explanation, from its Status body when there is one."""
    try:
        return str(json.loads(error.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return (error.body or error.reason or "no details")[:300]


def _retry_after_header(error: BaseException) -> str | None:
    """The server's Retry-After header (429/503), None when it gave none."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After")
    return str(value) if value is not None else None


def _permanent_error(what: str, error: ApiException) -> KubeError:
    """Translate an answer that retrying cannot change into the exception saying what to fix."""
    message = _api_message(error)
    if error.status == 403:
        return KubeForbidden(
            f"{what} is forbidden for modelmedic's identity: {message}. Check that deploy/rbac/role.yaml is applied "
            "in this namespace and bound to the user in the kubeconfig (kubectl auth can-i --as <user>)"
        )
    if error.status == 404:
        return KubeNotFound(f"{what}: not found ({message}); check the namespace and the Deployment's name")
    if error.status == 401:
        return KubeError(f"{what}: unauthorized (401): the kubeconfig's credentials are invalid or expired")
    return KubeError(f"{what} was rejected with HTTP {error.status}: {message}")


def _exhausted_error(what: str, attempts: int, error: BaseException) -> KubeUnavailable:
    if isinstance(error, ApiException) and error.status == 409:
        return KubeUnavailable(
            f"{what} still conflicted after {attempts} attempts: something else keeps changing the object "
            "(another controller or operator); check its managedFields and retry later"
        )
    detail = f"HTTP {error.status}: {_api_message(error)}" if isinstance(error, ApiException) else repr(error)
    return KubeUnavailable(
        f"{what} failed after {attempts} attempts ({detail}); check that the API server is reachable "
        "and healthy (/readyz) and not throttling this client"
    )


async def call_with_retries(what: str, operation: Callable[[], T], policy: RetryPolicy) -> T:
    """Run one blocking API operation in a thread, retrying what may succeed next time.

    ``operation`` should read what it needs and write in one go, so a retry after
    a 409 starts from the object's current state.
    """
    for attempt in range(policy.attempts):
        try:
            return await asyncio.to_thread(operation)
        except ApiException as error:
            if error.status not in RETRYABLE_STATUSES:
                raise _permanent_error(what, error) from error
            last: BaseException = error
        except TRANSPORT_ERRORS as error:
            last = error
        if attempt == policy.attempts - 1:
            raise _exhausted_error(what, policy.attempts, last) from last
        hint = policy.retry_after(_retry_after_header(last), time.time()) or 0.0
        delay = max(policy.backoff(attempt), min(hint, policy.max_delay_s))
        log.warning("%s: attempt %d/%d failed (%s), retrying in %.2fs", what, attempt + 1, policy.attempts, last, delay)
        await policy.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def version_of(template: client.V1PodTemplateSpec) -> str | None:
    """The model version a pod template runs: its version label, else the first container's MODEL_VERSION."""
    labels = (template.metadata.labels if template.metadata else None) or {}
    if VERSION_LABEL in labels:
        return labels[VERSION_LABEL]
    containers = template.spec.containers if template.spec else []
    env = (containers[0].env or []) if containers else []
    return next((var.value for var in env if var.name == VERSION_ENV), None)


def keep_serving(strategy: client.V1DeploymentStrategy | None) -> dict[str, Any]:
    """A rolling update that takes no Ready pod away before its replacement is Ready (maxUnavailable 0).

    A release must leave the last healthy copy serving until the new version is Ready; a surge of
    at least one pod is what lets the rollout move at all then (the API refuses 0 and 0).

    >>> keep_serving(None)
    {'type': 'RollingUpdate', 'rollingUpdate': {'maxUnavailable': 0, 'maxSurge': '25%'}}
    >>> keep_serving(client.V1DeploymentStrategy(rolling_update=client.V1RollingUpdateDeployment(max_surge=3)))
    {'type': 'RollingUpdate', 'rollingUpdate': {'maxUnavailable': 0, 'maxSurge': 3}}
    """
    rolling = strategy.rolling_update if strategy is not None else None
    surge = rolling.max_surge if rolling is not None else None
    if surge in (None, 0, "0", "0%"):
        surge = "25%"
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": surge}}


def _revision(meta: client.V1ObjectMeta) -> int:
    return int((meta.annotations or {}).get(REVISION_ANNOTATION, 0))


def _state(deployment: client.V1Deployment) -> DeploymentState:
    status = deployment.status or client.V1DeploymentStatus()
    containers = deployment.spec.template.spec.containers if deployment.spec.template.spec else []
    return DeploymentState(
        namespace=deployment.metadata.namespace,
        name=deployment.metadata.name,
        replicas=deployment.spec.replicas if deployment.spec.replicas is not None else 1,
        ready_replicas=status.ready_replicas or 0,
        updated_replicas=status.updated_replicas or 0,
        version=version_of(deployment.spec.template),
        image=containers[0].image if containers else None,
        revision=_revision(deployment.metadata),
        annotations=dict(deployment.metadata.annotations or {}),
    )


def rollout_complete(deployment: client.V1Deployment) -> bool:
    """The controller saw the latest spec, and every replica is updated, ready and available, no old one left."""
    status = deployment.status or client.V1DeploymentStatus()
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    return (status.observed_generation or 0) >= (deployment.metadata.generation or 0) and all(
        (count or 0) == wanted
        for count in (status.updated_replicas, status.ready_replicas, status.available_replicas, status.replicas)
    )


def _progress_deadline_exceeded(deployment: client.V1Deployment) -> bool:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return any(c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded" for c in conditions)


class KubeClient:
    """Async access to the Deployments (and their HPAs, ReplicaSets and events) of model servers."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        retry: RetryPolicy = RetryPolicy(attempts=5, base_delay_s=0.2),
        request_timeout_s: float = 10.0,
    ) -> None:
        self.api_client = api_client
        self.retry = retry
        self.request_timeout_s = request_timeout_s
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._autoscaling = client.AutoscalingV2Api(api_client)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, context: str | None = None, **options: Any) -> KubeClient:
        """A client acting as the kubeconfig's (current or given) context."""
        try:
            api_client = config.new_client_from_config(config_file=str(path), context=context, persist_config=False)
        except (ConfigException, OSError) as error:
            raise KubeError(f"cannot load kubeconfig {path} (context {context or 'current'}): {error}") from error
        return cls(api_client, **options)

    @classmethod
    def in_cluster(cls, **options: Any) -> KubeClient:
        """A client acting as the pod's ServiceAccount (the deploy/rbac identity when run in-cluster)."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as error:
            raise KubeError(f"not running in a Kubernetes pod with a ServiceAccount token: {error}") from error
        return cls(client.ApiClient(configuration), **options)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.api_client.close()

    async def _call(self, what: str, operation: Callable[[], T]) -> T:
        return await call_with_retries(what, operation, self.retry)

    # ------------------------------------------------------------ reads

    async def get_deployment(self, namespace: str, name: str) -> DeploymentState:
        """Replicas, readiness, version, image and revision of one Deployment."""
        deployment = await self._call(f"get deployment {namespace}/{name}", lambda: self._read(namespace, name))
        return _state(deployment)

    async def list_deployments(self, namespace: str, label_selector: str | None = None) -> list[DeploymentState]:
        """The Deployments of ``namespace`` matching ``label_selector`` (all when None)."""
        found = await self._call(
            f"list deployments in {namespace} ({label_selector or 'all'})",
            lambda: self._apps.list_namespaced_deployment(
                namespace, label_selector=label_selector, _request_timeout=self.request_timeout_s
            ),
        )
        return [_state(deployment) for deployment in found.items]

    async def get_replicas(self, namespace: str, name: str) -> int:
        """The replica count the Deployment asks for (its scale subresource)."""
        scale = await self._call(
            f"get deployments/scale {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment_scale(name, namespace, _request_timeout=self.request_timeout_s),
        )
        return scale.spec.replicas or 0

    async def get_version(self, namespace: str, name: str) -> str:
        """The model version the Deployment's pod template runs."""
        state = await self.get_deployment(namespace, name)
        if state.version is None:
            raise KubeError(
                f"deployment {namespace}/{name} names no model version: give its pod template the label "
                f"{VERSION_LABEL} (or env {VERSION_ENV} on its first container)"
            )
        return state.version

    async def revision_created_at(self, namespace: str, name: str) -> datetime:
        """When the Deployment's current revision was rolled out: its ReplicaSet's creation time."""

        def read() -> datetime:
            deployment = self._read(namespace, name)
            current = _revision(deployment.metadata)
            for replica_set in self._owned_replica_sets(deployment):
                if _revision(replica_set.metadata) == current:
                    return replica_set.metadata.creation_timestamp
            raise KubeError(
                f"deployment {namespace}/{name} has no ReplicaSet for its revision {current} yet; "
                "wait for the Deployment controller to observe it"
            )

        return await self._call(f"get current replicaset of deployment {namespace}/{name}", read)

    # ------------------------------------------------------------ writes

    async def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None], *, replicas: int | None = None
    ) -> None:
        """Set annotations on the Deployment (None removes one), and its replica count in the same patch when given.

        One write for both means a playbook's idempotency mark and its change land
        together or not at all.
        """
        body: dict[str, Any] = {"metadata": {"annotations": dict(annotations)}}
        if replicas is not None:
            if replicas < 0:
                raise ValueError(f"replicas must be >= 0, got {replicas}")
            body["spec"] = {"replicas": replicas}
        await self._call(
            f"annotate deployment {namespace}/{name}" + (f" and scale to {replicas}" if replicas is not None else ""),
            lambda: self._patch(namespace, name, body, MERGE_PATCH),
        )

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        """Scale through the scale subresource, which is all the deployments/scale RBAC rule allows."""
        if replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {replicas}")
        await self._call(
            f"patch deployments/scale {namespace}/{name} to {replicas}",
            lambda: self._apps.patch_namespaced_deployment_scale(
                name, namespace, {"spec": {"replicas": replicas}},
                _content_type=MERGE_PATCH, _request_timeout=self.request_timeout_s,
            ),
        )

    async def set_version(self, namespace: str, name: str, version: str, image: str | None = None,
                          env: Mapping[str, str] | None = None,
                          pod_annotations: Mapping[str, str] | None = None) -> None:
        """Make the Deployment's pods run ``version``: its label and MODEL_VERSION, ``image`` when given,
        ``env`` (e.g. the registry's artifact URI and digest, so pods pull exactly that artifact) and
        ``pod_annotations`` on the pod template, in one patch. The rolling update never takes a Ready
        pod away before its replacement is Ready (:func:`keep_serving`)."""

        def patch() -> None:
            deployment = self._read(namespace, name)
            container = deployment.spec.template.spec.containers[0].name
            variables = [{"name": VERSION_ENV, "value": version}, *({"name": k, "value": v} for k, v in (env or {}).items())]
            change: dict[str, Any] = {"name": container, "env": variables}
            if image is not None:
                change["image"] = image
            metadata: dict[str, Any] = {"labels": {VERSION_LABEL: version}}
            if pod_annotations:
                metadata["annotations"] = dict(pod_annotations)
            body = {"spec": {"strategy": keep_serving(deployment.spec.strategy),
                             "template": {"metadata": metadata, "spec": {"containers": [change]}}}}
            self._patch(namespace, name, body, STRATEGIC_MERGE)

        await self._call(f"patch deployment {namespace}/{name} to version {version}", patch)

    async def previous_version(self, namespace: str, name: str) -> str | None:
        """The version of the revision :meth:`rollback` would restore (KubeError when there is none)."""
        return await self._call(f"read the previous revision of deployment {namespace}/{name}",
                                lambda: version_of(self._previous_replica_set(self._read(namespace, name)).spec.template))

    async def rollback(self, namespace: str, name: str) -> str | None:
        """Roll back to the previous revision, as ``kubectl rollout undo`` does; return its version.

        The previous revision's pod template (image, environment, annotations: everything the pods
        ran) is read from its ReplicaSet and written back over the Deployment's, conditional on the
        Deployment's resourceVersion, so a concurrent change makes it retry from the top. The rolling
        update keeps serving as in :meth:`set_version`.
        """

        def undo() -> str | None:
            deployment = self._read(namespace, name)
            previous = self._previous_replica_set(deployment)
            template = self.api_client.sanitize_for_serialization(previous.spec.template)
            template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
            self._patch(namespace, name, [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": deployment.metadata.resource_version},
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "replace", "path": "/spec/strategy", "value": keep_serving(deployment.spec.strategy)},
            ], JSON_PATCH)
            return version_of(previous.spec.template)

        return await self._call(f"roll back deployment {namespace}/{name}", undo)

    async def restart(self, namespace: str, name: str) -> None:
        """Replace every pod through a rolling update, as ``kubectl rollout restart`` does."""
        stamp = datetime.now(UTC).isoformat()
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}
        await self._call(f"restart deployment {namespace}/{name}", lambda: self._patch(namespace, name, body, STRATEGIC_MERGE))

    async def wait_rollout(self, namespace: str, name: str, timeout_s: float, poll_s: float = 0.25) -> DeploymentState:
        """Wait until the rollout is complete (see rollout_complete); raise KubeRolloutTimeout if it is not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            deployment = await self._call(f"get deployment {namespace}/{name}", lambda: self._read(namespace, name))
            state = _state(deployment)
            if rollout_complete(deployment):
                return state
            progress = (
                f"{state.updated_replicas}/{state.replicas} updated, {state.ready_replicas} ready, "
                f"version {state.version}, revision {state.revision}"
            )
            if _progress_deadline_exceeded(deployment):
                raise KubeRolloutTimeout(
                    f"deployment {namespace}/{name} exceeded its progress deadline ({progress}); "
                    "check its pods' events for image pulls, scheduling and readiness failures"
                )
            if loop.time() >= deadline:
                raise KubeRolloutTimeout(
                    f"deployment {namespace}/{name} did not finish rolling out in {timeout_s:.0f}s ({progress}); "
                    "check its pods (Pending: capacity or node selectors; not Ready: readiness probes)"
                )
            await self.retry.sleep(poll_s)  # injectable like the retries' (tests pass a fake)

    async def get_hpa_bounds(self, namespace: str, name: str) -> tuple[int, int]:
        """The (minReplicas, maxReplicas) of a HorizontalPodAutoscaler."""
        hpa = await self._call(
            f"get horizontalpodautoscaler {namespace}/{name}",
            lambda: self._autoscaling.read_namespaced_horizontal_pod_autoscaler(
                name, namespace, _request_timeout=self.request_timeout_s
            ),
        )
        return hpa.spec.min_replicas or 1, hpa.spec.max_replicas

    async def set_hpa_bounds(self, namespace: str, name: str, min_replicas: int, max_replicas: int) -> None:
        """Move an HPA's bounds, for a scale-out the autoscaler would otherwise undo."""
        if not 1 <= min_replicas <= max_replicas:
            raise ValueError(f"need 1 <= min_replicas <= max_replicas, got {min_replicas}, {max_replicas}")
        body = {"spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas}}
        await self._call(
            f"patch horizontalpodautoscaler {namespace}/{name} to [{min_replicas}, {max_replicas}]",
            lambda: self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=self.request_timeout_s
            ),
        )

    async def record_event(self, namespace: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
        """Leave an Event on the Deployment, so `kubectl describe` shows what modelmedic did and why."""
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}.modelmedic."),
            involved_object=client.V1ObjectReference(api_version="apps/v1", kind="Deployment", namespace=namespace, name=name),
            reason=reason, message=message, type=type_, count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component="modelmedic"),
        )
        await self._call(
            f"create event {reason} on deployment {namespace}/{name}",
            lambda: self._core.create_namespaced_event(namespace, event, _request_timeout=self.request_timeout_s),
        )

    # ------------------------------------------------------------ blocking helpers (run in a thread)

    def _read(self, namespace: str, name: str) -> client.V1Deployment:
        return self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self.request_timeout_s)

    def _patch(self, namespace: str, name: str, body: dict | list, content_type: str) -> None:
        self._apps.patch_namespaced_deployment(
            name, namespace, body, _content_type=content_type, _request_timeout=self.request_timeout_s
        )

    def _owned_replica_sets(self, deployment: client.V1Deployment) -> list[client.V1ReplicaSet]:
        """The ReplicaSets this Deployment controls (one per revision still kept)."""
        meta = deployment.metadata
        match_labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{key}={value}" for key, value in sorted(match_labels.items())) or None
        return [
            replica_set
            for replica_set in self._apps.list_namespaced_replica_set(
                meta.namespace, label_selector=selector, _request_timeout=self.request_timeout_s
            ).items
            if any(ref.uid == meta.uid and ref.controller for ref in replica_set.metadata.owner_references or [])
        ]

    def _previous_replica_set(self, deployment: client.V1Deployment) -> client.V1ReplicaSet:
        """The ReplicaSet this Deployment owns with the highest revision below the current one."""
        meta = deployment.metadata
        current = _revision(meta)
        older = [replica_set for replica_set in self._owned_replica_sets(deployment) if _revision(replica_set.metadata) < current]
        if not older:
            raise KubeError(
                f"deployment {meta.namespace}/{meta.name} has no revision before {current} to roll back to "
                "(never updated, or its revisionHistoryLimit pruned the old ReplicaSets)"
            )
        return max(older, key=lambda replica_set: _revision(replica_set.metadata))
