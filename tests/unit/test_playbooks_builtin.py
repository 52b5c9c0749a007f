"""The built-in playbooks' decisions against a fake KubeClient (the boundary), with a fake clock.

What the API server really does with their writes is in tests/integration/test_playbooks_k8s.py;
here: every branch of every decision, exactly, with no wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from modelmedic.errors import KubeError, KubeForbidden, UnknownModelError
from modelmedic.kube import DeploymentState
from modelmedic.registry import StableVersions
from modelmedic.remediations import (
    LAST_ACTION_ANNOTATION,
    Outcome,
    PlaybookContext,
    PlaybookRegistry,
    Target,
    idempotency_key,
    run_playbook,
)
from modelmedic.remediations.marks import DEPLOYED_AT, LAST_SCALE_AT
from modelmedic.remediations.rollback import ROLLED_BACK_TO
from modelmedic.testing import FakeKube, deployment_state

NOW = 1_800_000_000.0
KEY = idempotency_key("inc-1", "any", 0)


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def fake(state: DeploymentState, *, hpa: tuple[int, int] | None = None, revision_created: float = NOW - 60,
         previous: str = "v1", write_error: KubeError | None = None, event_error: KubeError | None = None) -> FakeKube:
    """The one Deployment ``state``, rolled out at ``revision_created`` over a revision running ``previous``."""
    kube = FakeKube(state, clock=lambda: NOW)
    kube.revision_created[state.name], kube.previous[state.name] = revision_created, previous
    if hpa is not None:
        kube.hpa[state.name] = hpa
    kube.write_error, kube.event_error = write_error, event_error
    return kube


def deployment(replicas: int = 2, version: str = "v2", **annotations: str) -> DeploymentState:
    return deployment_state("fraud", version, replicas, **annotations)


@dataclass
class FakeRegistry:
    versions: StableVersions | None

    def stable_versions(self, model: str) -> StableVersions:
        if self.versions is None:
            raise UnknownModelError(f"model {model!r} is not registered")
        return self.versions


@pytest.fixture(scope="module")
def playbooks() -> PlaybookRegistry:
    registry = PlaybookRegistry()
    registry.load_entry_points()
    return registry


def context(kube: FakeKube, *, version: str = "v2", dry_run: bool = False, registry: Any = None,
            key: str = KEY, now: float = NOW) -> PlaybookContext:
    target = Target(model="fraud", version=version, role="production", namespace="models", deployment="fraud")
    return PlaybookContext(k8s=kube, target=target, incident_id="inc-1", anomaly_class="latency", kind="latency",  # type: ignore[arg-type]
                           idempotency_key=key, dry_run=dry_run, registry=registry, clock=lambda: now)


async def run(playbooks: PlaybookRegistry, name: str, ctx: PlaybookContext, **params: Any) -> Outcome:
    return await run_playbook(playbooks.get(name), ctx, params)


# ---------------------------------------------------------------- every built-in

@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_replay_with_the_same_key_does_nothing(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(**{LAST_ACTION_ANNOTATION: KEY}))
    outcome = await run(playbooks, name, context(kube))
    assert (outcome.status, outcome.message) == ("skipped", "already done (a replay of the same run)")
    assert kube.writes == []


@pytest.mark.parametrize(("name", "message"), [
    ("scale-out", "would scale 2 -> 3 through the Deployment"),
    ("rollback", "would roll v2 back to the previous revision"),
    ("restart", "would restart the 2 pods of models/fraud"),
])
async def test_dry_run_says_what_it_would_do_and_writes_nothing(playbooks: PlaybookRegistry, name: str, message: str) -> None:
    kube = fake(deployment())
    outcome = await run(playbooks, name, context(kube, dry_run=True))
    assert (outcome.status, outcome.message) == ("dry_run", message)
    assert kube.writes == []


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_forbidden_write_fails_the_run_with_the_rbac_hint(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(), write_error=KubeForbidden("patch deployments models/fraud is forbidden: check deploy/rbac/role.yaml"))
    outcome = await run(playbooks, name, context(kube))
    assert outcome.status == "failed" and outcome.message.endswith("check deploy/rbac/role.yaml")


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_missing_event_does_not_undo_a_done_action(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(), event_error=KubeForbidden("create events is forbidden"))
    outcome = await run(playbooks, name, context(kube))
    assert outcome.status == "done" and kube.deployments["fraud"].annotations[LAST_ACTION_ANNOTATION] == KEY


# ---------------------------------------------------------------- scale-out

async def test_scale_out_patches_replicas_and_marks_in_one_write(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(replicas=2))
    outcome = await run(playbooks, "scale-out", context(kube), step=2, max_replicas=10)
    assert outcome == Outcome.done("scaled 2 -> 4 through the Deployment", before=2, after=4, via="deployment")
    assert kube.changes() == [("annotate", ({LAST_ACTION_ANNOTATION: KEY, LAST_SCALE_AT: iso(NOW)}, 4))]
    assert [event.reason for event in kube.events] == ["ModelmedicScaledOut"]


@pytest.mark.parametrize(("replicas", "hpa", "max_replicas", "message"), [
    (5, None, 5, "already at the ceiling (5 replicas, max 5)"),
    (3, (1, 3), 10, "already at the ceiling (3 replicas, max 3)"),
])
async def test_scale_out_never_passes_its_ceiling_or_the_hpas(
    playbooks: PlaybookRegistry, replicas: int, hpa: tuple[int, int] | None, max_replicas: int, message: str
) -> None:
    kube = fake(deployment(replicas=replicas), hpa=hpa)
    outcome = await run(playbooks, "scale-out", context(kube), step=3, max_replicas=max_replicas)
    assert (outcome.status, outcome.message) == ("skipped", message) and kube.writes == []


async def test_scale_out_under_an_hpa_raises_its_floor_from_the_larger_of_replicas_and_floor(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(replicas=2), hpa=(4, 8))
    outcome = await run(playbooks, "scale-out", context(kube), step=1, max_replicas=10)
    assert (outcome.message, outcome.details["via"]) == ("scaled 4 -> 5 through HPA minReplicas 4 -> 5", "hpa")
    assert kube.changes() == [("hpa", (5, 8)), ("annotate", ({LAST_ACTION_ANNOTATION: KEY, LAST_SCALE_AT: iso(NOW)}, None))]


@pytest.mark.parametrize(("ago_s", "status"), [(0, "skipped"), (299.5, "skipped"), (300, "done"), (-5, "skipped")])
async def test_scale_out_is_stabilized_from_the_deployments_own_annotation(
    playbooks: PlaybookRegistry, ago_s: float, status: str
) -> None:
    kube = fake(deployment(**{LAST_SCALE_AT: iso(NOW - ago_s)}))
    outcome = await run(playbooks, "scale-out", context(kube), stabilization_s=300)
    assert outcome.status == status


async def test_an_unreadable_stabilization_stamp_counts_as_never(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(**{LAST_SCALE_AT: "last tuesday"}))
    assert (await run(playbooks, "scale-out", context(kube))).status == "done"


# ---------------------------------------------------------------- rollback

async def test_rollback_to_the_previous_revision_marks_what_it_put_in_place(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube))
    assert outcome == Outcome.done("rolled v2 back to v1 (previous revision)", before="v2", after="v1", source="previous revision")
    assert kube.changes() == [("rollback", "v1"), ("annotate", ({LAST_ACTION_ANNOTATION: KEY, ROLLED_BACK_TO: "v1"}, None))]


@pytest.mark.parametrize(("versions", "expected"), [
    (StableVersions("fraud", stable="v1", previous_stable="v0", canary=None), "v1"),   # v2 never promoted
    (StableVersions("fraud", stable="v2", previous_stable="v1", canary=None), "v1"),   # v2 is the stable one
])
async def test_rollback_prefers_the_registrys_last_stable_version_other_than_the_bad_one(
    playbooks: PlaybookRegistry, versions: StableVersions, expected: str
) -> None:
    kube = fake(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube, registry=FakeRegistry(versions)))
    assert (outcome.status, outcome.details["source"]) == ("done", "registry")
    assert kube.changes()[0] == ("set_version", expected)


@pytest.mark.parametrize("registry", [
    FakeRegistry(None),                                                          # model not registered
    FakeRegistry(StableVersions("fraud", stable="v2", previous_stable=None, canary=None)),  # no earlier stable
])
async def test_rollback_falls_back_to_the_previous_revision_when_the_registry_cannot_say(
    playbooks: PlaybookRegistry, registry: FakeRegistry
) -> None:
    kube = fake(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube, registry=registry))
    assert (outcome.status, outcome.details["source"], kube.changes()[0]) == ("done", "previous revision", ("rollback", "v1"))


@pytest.mark.parametrize(("kube", "message"), [
    (fake(deployment(version="v1")), "v2 is not deployed any more (v1 is): nothing to roll back"),
    (fake(deployment(version="v2"), revision_created=NOW - 3601),
     "v2 was deployed 3601s ago, longer than recent_s=3600: not a fresh release, so not rolled back"),
    (fake(deployment(version="v2", **{DEPLOYED_AT: iso(NOW - 7200)}), revision_created=NOW),
     "v2 was deployed 7200s ago, longer than recent_s=3600: not a fresh release, so not rolled back"),
    (fake(replace(deployment(version="v2"), revision=1)),
     "v2 is the Deployment's first revision and the registry names no other: nothing to roll back to"),
    (fake(deployment(version="v2", **{ROLLED_BACK_TO: "v2"})),
     "v2 is itself the result of a rollback: rolling back again would restore the version it replaced; this needs a person"),
])
async def test_rollback_only_acts_on_the_fresh_release_that_is_deployed(
    playbooks: PlaybookRegistry, kube: FakeKube, message: str
) -> None:
    outcome = await run(playbooks, "rollback", context(kube))
    assert (outcome.status, outcome.message) == ("skipped", message) and kube.writes == []


async def test_the_deploy_tools_stamp_wins_over_the_replicaset_age(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(version="v2", **{DEPLOYED_AT: iso(NOW - 60)}), revision_created=NOW - 86_400)
    assert (await run(playbooks, "rollback", context(kube))).status == "done"


# ---------------------------------------------------------------- restart

async def test_restart_restarts_then_marks(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(replicas=3, version="v7"))
    outcome = await run(playbooks, "restart", context(kube))
    assert outcome == Outcome.done("restarted the 3 pods of models/fraud", replicas=3, version="v7")
    assert kube.changes() == [("restart", None), ("annotate", ({LAST_ACTION_ANNOTATION: KEY}, None))]
