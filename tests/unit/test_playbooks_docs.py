"""Every Python and YAML example of docs/playbooks.md runs: the playbook registers and works, the policy loads."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from modelmedic.response.policy import parse_policy
import modelmedic.remediations
from modelmedic.remediations import PlaybookContext, PlaybookRegistry, Target, api, idempotency_key, run_playbook
from modelmedic.testing import FakeKube, deployment_state

DOC = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)


@pytest.fixture
def doc_playbooks(monkeypatch: pytest.MonkeyPatch) -> PlaybookRegistry:
    """The installed playbooks plus the one the docs write, registered by running the docs' code as the
    module the docs name (``acme_playbooks.drain``), so the docs' test can import it."""
    registry = PlaybookRegistry()
    monkeypatch.setattr(api, "default_registry", registry)
    monkeypatch.setattr(modelmedic.remediations, "default_registry", registry)
    registry.load_entry_points()
    drain = types.ModuleType("acme_playbooks.drain")
    monkeypatch.setitem(sys.modules, "acme_playbooks.drain", drain)
    exec(compile(blocks("python")[0], f"{DOC}:python", "exec"), drain.__dict__)
    return registry


@pytest.mark.parametrize(("role", "status", "replicas"), [("canary", "done", 0), ("production", "skipped", 3)])
async def test_the_twenty_line_playbook_works(doc_playbooks: PlaybookRegistry, role: str, status: str, replicas: int) -> None:
    kube = FakeKube(deployment_state("d", "v2", replicas=3, namespace="m"))
    ctx = PlaybookContext(k8s=kube, target=Target(model="fraud-eu", version="v2", role=role, namespace="m", deployment="d"),
                          incident_id="inc", anomaly_class="latency", kind="latency",
                          idempotency_key=idempotency_key("inc", "scale-canary-down", 0))  # type: ignore[arg-type]
    outcome = await run_playbook(doc_playbooks.get("scale-canary-down"), ctx, {"floor": 0})
    assert (outcome.status, kube.deployments["d"].replicas) == (status, replicas)
    assert len(blocks("python")[0].strip().splitlines()) <= 30, "the docs promise about twenty lines"


async def test_the_docs_test_of_the_playbook_passes(doc_playbooks: PlaybookRegistry) -> None:
    """The second example (a playbook author's unit test with modelmedic.testing.FakeKube) runs and passes."""
    code = blocks("python")[1]
    assert len(code.strip().splitlines()) <= 25, "the docs promise about twenty lines"
    namespace: dict = {"__name__": "docs_test_drain"}
    exec(compile(code, f"{DOC}:python[1]", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        await test()


def test_the_policy_example_loads_and_names_only_playbooks_that_exist(doc_playbooks: PlaybookRegistry) -> None:
    (text,) = blocks("yaml")
    policy = parse_policy(yaml.safe_load(text), "docs/playbooks.md")
    policy.validate_playbooks(doc_playbooks)
    assert policy.route("latency", "latency", "fraud-eu", "canary").playbooks[0].name == "scale-canary-down"
    assert policy.target("legacy-scorer", "v1", "production").deployment == "scorer"


def test_the_entry_point_example_matches_the_playbook() -> None:
    (toml,) = blocks("toml")
    assert 'scale-canary-down = "acme_playbooks.drain:scale_canary_down"' in toml
