"""The example plugin (examples/acme-playbooks), installed as a package: found through its entry point, run by modelmedic.

This is also how a plugin author tests a playbook: ``modelmedic.testing.FakeKube`` at the
boundary, which records what the playbook asked for, and the playbook run through :func:`run_playbook`.
"""

from __future__ import annotations

import pytest

from modelmedic.errors import PlaybookError
from modelmedic.remediations import Outcome, PlaybookContext, PlaybookRegistry, Target, idempotency_key, run_playbook
from modelmedic.testing import FakeKube, deployment_state

TARGET = Target(model="fraud", version="v2", role="production", namespace="models", deployment="fraud")


@pytest.fixture(scope="module")
def playbooks() -> PlaybookRegistry:
    registry = PlaybookRegistry()
    assert "annotate-deployment" in registry.load_entry_points(), (
        "the example plugin is not installed: pip install -e examples/acme-playbooks (deploy/local/setup.sh does)"
    )
    return registry


def context(kube: FakeKube, dry_run: bool = False) -> PlaybookContext:
    return PlaybookContext(k8s=kube, target=TARGET, incident_id="inc-7", anomaly_class="prediction",  # type: ignore[arg-type]
                           kind="canary_divergence", idempotency_key=idempotency_key("inc-7", "annotate-deployment", 0),
                           dry_run=dry_run)


async def test_the_example_playbook_annotates_the_models_deployment(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment_state("fraud"))
    params = playbooks.validate("annotate-deployment", {"key": "acme.example/on-call"})

    outcome = await run_playbook(playbooks.get("annotate-deployment"), context(kube), params)

    note = "inc-7: prediction/canary_divergence on fraud v2"
    assert outcome == Outcome.done("annotated models/fraud", annotation="acme.example/on-call", note=note)
    assert kube.deployments["fraud"].annotations["acme.example/on-call"] == note
    assert kube.changes() == [("annotate", ({"acme.example/on-call": note}, None))]
    assert playbooks.get("annotate-deployment").description.startswith("Record the incident on the model's Deployment")


async def test_the_example_playbook_honours_dry_run_and_rejects_a_bad_key(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment_state("fraud"))
    outcome = await run_playbook(playbooks.get("annotate-deployment"), context(kube, dry_run=True))
    assert outcome.status == "dry_run" and kube.writes == []
    with pytest.raises(PlaybookError, match="key: String should match pattern"):
        playbooks.validate("annotate-deployment", {"key": "no spaces allowed/here"})
