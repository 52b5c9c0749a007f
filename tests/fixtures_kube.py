"""Pytest fixtures for the real Kubernetes API: one control plane per session, a namespace per test.

Registered as a plugin (``pytest_plugins = ["fixtures_kube"]`` in ``tests/conftest.py``, or
``-p fixtures_kube`` with ``tests`` on ``PYTHONPATH``). The session fixture builds the binaries
when the cache lacks them (about 6.5 minutes once) and fails loudly when it cannot: these
tests never skip.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

# deploy/local/ holds scripts, not part of the installed package: import them from the checkout.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.local import kube as local_kube  # noqa: E402
from load.cluster import model_deployment  # noqa: E402
from modelmedic.kube import KubeClient  # noqa: E402

ROLLOUT_TIMEOUT_S = 60.0


@dataclass
class KubeNamespace:
    """A fresh namespace where the modelmedic identity has exactly deploy/rbac/role.yaml."""

    name: str
    stack: local_kube.KubeStack
    admin: KubeClient

    async def create_model(self, name: str = "model-a", version: str = "v1", replicas: int = 2) -> str:
        """Create a model Deployment as the admin (modelmedic may not create workloads) and wait until Ready."""
        apps = client.AppsV1Api(self.admin.api_client)
        apps.create_namespaced_deployment(self.name, model_deployment(name, version, replicas))
        await self.admin.wait_rollout(self.name, name, ROLLOUT_TIMEOUT_S)
        return name

    def pods(self, name: str) -> list[client.V1Pod]:
        """The live (not terminating) pods of the model Deployment ``name``, read as the admin."""
        found = client.CoreV1Api(self.admin.api_client).list_namespaced_pod(self.name, label_selector=f"app={name}")
        return [pod for pod in found.items if pod.metadata.deletion_timestamp is None]


@pytest.fixture(scope="session")
def kube_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kube.KubeStack]:
    """A real control plane (etcd, API server, controllers, scheduler, KWOK nodes) for the session."""
    workdir = tmp_path_factory.mktemp("kube")
    try:
        yield local_kube.start(workdir)
    finally:
        local_kube.stop(workdir)


@pytest.fixture
def kube_admin(kube_stack: local_kube.KubeStack) -> Iterator[KubeClient]:
    """A client acting as the cluster admin (system:masters): for setting up what tests act on."""
    admin = KubeClient.from_kubeconfig(kube_stack.admin_kubeconfig)
    yield admin
    admin.close()


@pytest.fixture
def kube(kube_stack: local_kube.KubeStack) -> Iterator[KubeClient]:
    """The client the service uses, acting as the modelmedic identity with its least-privilege RBAC."""
    service = KubeClient.from_kubeconfig(kube_stack.service_kubeconfig)
    yield service
    service.close()


@pytest.fixture
def kube_namespace(kube_stack: local_kube.KubeStack, kube_admin: KubeClient) -> Iterator[KubeNamespace]:
    """A fresh namespace with modelmedic's Role bound, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    local_kube.grant(kube_stack, name)
    yield KubeNamespace(name, kube_stack, kube_admin)
    client.CoreV1Api(kube_admin.api_client).delete_namespace(name)
