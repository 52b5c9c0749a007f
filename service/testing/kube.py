"""A fake Kubernetes boundary: the :class:`~modelmedic.kube.KubeClient` calls over Deployments held in memory.

For unit tests of decisions (a playbook's branches, a release's checks): every write is
recorded (:attr:`FakeKube.writes`) and changes the held :class:`DeploymentState` the way the
API server would, at once. What the API server really does with the same calls (RBAC, the
Deployment controller, rollouts) is for the integration tests on a real one
(``tests/fixtures_kube.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from modelmedic.errors import KubeError, KubeNotFound, KubeRolloutTimeout
from modelmedic.kube import DeploymentState


class Write(NamedTuple):
    """One write call: ``call`` is ``annotate``, ``scale``, ``set_version``, ``rollback``, ``restart`` or ``hpa``."""

    call: str
    deployment: str
    value: Any


class Event(NamedTuple):
    """One Kubernetes Event left on a Deployment."""

    deployment: str
    reason: str
    message: str
    type: str


def deployment_state(name: str = "fraud", version: str | None = "v2", replicas: int = 2, *, namespace: str = "models",
                     revision: int = 2, **annotations: str) -> DeploymentState:
    """A rolled-out Deployment (every replica updated and Ready) running ``version``."""
    return DeploymentState(namespace, name, replicas, replicas, replicas, version, f"img:{version}", revision, annotations)


class FakeKube:
    """The KubeClient's Deployment, HPA and Event calls over Deployments in memory; every write recorded.

    Set :attr:`write_error` / :attr:`event_error` to make the next writes / Events fail as the
    API server can (e.g. ``KubeForbidden``), :attr:`unready` / :attr:`stuck` to make versions
    whose pods never turn Ready / whose rollout never completes.
    """

    def __init__(self, *deployments: DeploymentState, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.deployments: dict[str, DeploymentState] = {d.name: d for d in deployments}
        """By name; one namespace's worth (each state carries its namespace, checked on every call)."""
        self.previous: dict[str, str | None] = {}
        """The version of each Deployment's previous revision, which :meth:`rollback` restores (absent:
        no older revision, and rollback fails as the real one does)."""
        self.revision_created: dict[str, float] = {d.name: clock() for d in deployments}
        """When each Deployment's current revision was rolled out (epoch seconds)."""
        self.hpa: dict[str, tuple[int, int]] = {}
        """(minReplicas, maxReplicas) of the HorizontalPodAutoscalers, by name."""
        self.env: dict[str, dict[str, str]] = {}
        """The extra environment :meth:`set_version` last gave each Deployment's pods."""
        self.pod_annotations: dict[str, dict[str, str]] = {}
        """The pod-template annotations :meth:`set_version` last gave each Deployment."""
        self.unready: set[str] = set()
        self.stuck: set[str] = set()
        self.write_error: KubeError | None = None
        self.event_error: KubeError | None = None
        self.writes: list[Write] = []
        self.events: list[Event] = []

    def changes(self, deployment: str | None = None) -> list[tuple[str, Any]]:
        """(call, value) of every write, of one Deployment when named."""
        return [(w.call, w.value) for w in self.writes if deployment is None or w.deployment == deployment]

    # ------------------------------------------------------------ reads

    def _get(self, namespace: str, name: str) -> DeploymentState:
        state = self.deployments.get(name)
        if state is None or state.namespace != namespace:
            raise KubeNotFound(f"get deployment {namespace}/{name}: not found")
        return state

    async def get_deployment(self, namespace: str, name: str) -> DeploymentState:
        return self._get(namespace, name)

    async def get_replicas(self, namespace: str, name: str) -> int:
        return self._get(namespace, name).replicas

    async def revision_created_at(self, namespace: str, name: str) -> datetime:
        self._get(namespace, name)
        return datetime.fromtimestamp(self.revision_created[name], UTC)

    async def get_hpa_bounds(self, namespace: str, name: str) -> tuple[int, int]:
        if name not in self.hpa:
            raise KubeNotFound(f"get horizontalpodautoscaler {namespace}/{name}: not found")
        return self.hpa[name]

    async def wait_rollout(self, namespace: str, name: str, timeout_s: float, poll_s: float = 0.25) -> DeploymentState:
        state = self._get(namespace, name)
        if state.version in self.stuck:
            raise KubeRolloutTimeout(f"deployment {namespace}/{name} did not finish rolling out in {timeout_s:.0f}s")
        return state

    # ------------------------------------------------------------ writes

    def _write(self, call: str, namespace: str, name: str, value: Any) -> DeploymentState:
        state = self._get(namespace, name)
        if self.write_error is not None:
            raise self.write_error
        self.writes.append(Write(call, name, value))
        return state

    def _put(self, state: DeploymentState, *, new_revision: bool = False, **changes: Any) -> None:
        """Store ``state`` with ``changes``; pods of an ``unready`` version never turn Ready."""
        state = replace(state, **changes)
        ready = 0 if state.version in self.unready else state.replicas
        if new_revision:
            self.previous[state.name] = self.deployments[state.name].version
            self.revision_created[state.name] = self.clock()
            state = replace(state, revision=state.revision + 1)
        self.deployments[state.name] = replace(state, ready_replicas=ready, updated_replicas=state.replicas)

    async def annotate(self, namespace: str, name: str, annotations: Mapping[str, str | None], *,
                       replicas: int | None = None) -> None:
        state = self._write("annotate", namespace, name, (dict(annotations), replicas))
        merged = {k: v for k, v in {**state.annotations, **annotations}.items() if v is not None}
        self._put(state, annotations=merged, replicas=state.replicas if replicas is None else replicas)

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        self._put(self._write("scale", namespace, name, replicas), replicas=replicas)

    async def set_version(self, namespace: str, name: str, version: str, image: str | None = None,
                          env: Mapping[str, str] | None = None,
                          pod_annotations: Mapping[str, str] | None = None) -> None:
        state = self._write("set_version", namespace, name, version)
        self.env[name] = dict(env or {})
        self.pod_annotations[name] = dict(pod_annotations or {})
        self._put(state, new_revision=True, version=version, image=image or state.image)

    async def previous_version(self, namespace: str, name: str) -> str | None:
        state = self._get(namespace, name)
        if name not in self.previous:
            raise KubeError(f"deployment {namespace}/{name} has no revision before {state.revision} to roll back to")
        return self.previous[name]

    async def rollback(self, namespace: str, name: str) -> str | None:
        state = self._get(namespace, name)
        if name not in self.previous:
            raise KubeError(f"deployment {namespace}/{name} has no revision before {state.revision} to roll back to")
        version = self.previous[name]
        self._put(self._write("rollback", namespace, name, version), new_revision=True, version=version)
        return version

    async def restart(self, namespace: str, name: str) -> None:
        self._put(self._write("restart", namespace, name, None), new_revision=True)

    async def set_hpa_bounds(self, namespace: str, name: str, min_replicas: int, max_replicas: int) -> None:
        if name not in self.hpa:
            raise KubeNotFound(f"patch horizontalpodautoscaler {namespace}/{name}: not found")
        self._write("hpa", namespace, name, (min_replicas, max_replicas))
        self.hpa[name] = (min_replicas, max_replicas)

    async def record_event(self, namespace: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
        self._get(namespace, name)
        if self.event_error is not None:
            raise self.event_error
        self.events.append(Event(name, reason, message, type_))
