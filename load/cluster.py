"""The simulated fleet's Kubernetes side: model Deployments, and hooks that read them back.

The demo and the end-to-end tests run each simulated model as a real Deployment on the
local API server (KWOK runs its pods). The fleet then asks :class:`ClusterView` how many
replicas are Ready and which version the pods run, so a scale-out really relieves an
overloaded model and a rollback really takes a bad version out of service.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes import client

from deploy.local.kube import KWOK_POD_PLACEMENT
from modelmedic.kube import VERSION_ENV, VERSION_LABEL, KubeClient

log = logging.getLogger(__name__)
FLEET_LABEL = "modelmedic.io/fleet"


def model_deployment(name: str, version: str, replicas: int) -> dict:
    """A model server's Deployment as modelmedic expects it: version label and env, pods KWOK runs."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, FLEET_LABEL: "demo"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, VERSION_LABEL: version}},
                "spec": {
                    **KWOK_POD_PLACEMENT,
                    "containers": [{
                        "name": "model",
                        "image": f"registry.local/models/{name}:{version}",
                        "env": [{"name": VERSION_ENV, "value": version}],
                    }],
                },
            },
        },
    }


async def create_models(admin: KubeClient, namespace: str, versions: dict[str, str], replicas: int,
                        timeout_s: float = 120.0) -> None:
    """Create one Deployment per model (as the admin: modelmedic may not create workloads), wait until Ready."""
    apps = client.AppsV1Api(admin.api_client)
    for name, version in versions.items():
        await asyncio.to_thread(apps.create_namespaced_deployment, namespace, model_deployment(name, version, replicas))
    await asyncio.gather(*(admin.wait_rollout(namespace, name, timeout_s) for name in versions))


class ClusterView:
    """Ready replicas and served version per model, refreshed in the background.

    The fleet's hooks are called for every model every time slice, so they read this
    cache; one list call per ``interval_s`` keeps the API server out of the hot loop.
    """

    def __init__(self, k8s: KubeClient, namespace: str, interval_s: float = 0.5) -> None:
        self.k8s, self.namespace, self.interval_s = k8s, namespace, interval_s
        self.replicas: dict[str, int] = {}
        self.versions: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    async def refresh(self) -> None:
        for d in await self.k8s.list_deployments(self.namespace, f"{FLEET_LABEL}=demo"):
            self.replicas[d.name] = d.ready_replicas
            if d.version:
                self.versions[d.name] = d.version

    async def start(self) -> "ClusterView":
        await self.refresh()
        self._task = asyncio.create_task(self._loop())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # a slow API server must not stop the traffic
                log.warning("cluster view refresh failed: %s", exc)

    def capacity(self, model: str) -> int:
        return self.replicas.get(model, 1)

    def version(self, model: str) -> str:
        return self.versions[model]
