"""Every Python and YAML example of docs/playbooks.md runs: the playbook registers and works, the policy loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmedic.response.policy import parse_policy
from modelmedic.remediations import PlaybookContext, PlaybookRegistry, Target, api, idempotency_key, run_playbook

DOC = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)


class FakeReplicas:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    async def get_replicas(self, namespace: str, name: str) -> int:
        return self.replicas

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> None:
        self.replicas = replicas


@pytest.fixture
def doc_playbooks(monkeypatch: pytest.MonkeyPatch) -> PlaybookRegistry:
    """The installed playbooks plus the one the docs write, registered by running the docs' code."""
    registry = PlaybookRegistry()
    monkeypatch.setattr(api, "default_registry", registry)
    registry.load_entry_points()
    (code,) = blocks("python")
    exec(compile(code, f"{DOC}:python", "exec"), {"__name__": "docs_playbooks"})
    return registry


@pytest.mark.parametrize(("role", "status", "replicas"), [("canary", "done", 0), ("production", "skipped", 3)])
async def test_the_twenty_line_playbook_works(doc_playbooks: PlaybookRegistry, role: str, status: str, replicas: int) -> None:
    kube: Any = FakeReplicas(3)
    ctx = PlaybookContext(k8s=kube, target=Target(model="fraud-eu", version="v2", role=role, namespace="m", deployment="d"),
                          incident_id="inc", anomaly_class="latency", kind="latency",
                          idempotency_key=idempotency_key("inc", "scale-canary-down", 0))
    outcome = await run_playbook(doc_playbooks.get("scale-canary-down"), ctx, {"floor": 0})
    assert (outcome.status, kube.replicas) == (status, replicas)
    assert len(blocks("python")[0].strip().splitlines()) <= 30, "the docs promise about twenty lines"


def test_the_policy_example_loads_and_names_only_playbooks_that_exist(doc_playbooks: PlaybookRegistry) -> None:
    (text,) = blocks("yaml")
    policy = parse_policy(yaml.safe_load(text), "docs/playbooks.md")
    policy.validate_playbooks(doc_playbooks)
    assert policy.route("latency", "latency", "fraud-eu", "canary").playbooks[0].name == "scale-canary-down"
    assert policy.target("legacy-scorer", "v1", "production").deployment == "scorer"


def test_the_entry_point_example_matches_the_playbook() -> None:
    (toml,) = blocks("toml")
    assert 'scale-canary-down = "acme_playbooks.drain:scale_canary_down"' in toml
