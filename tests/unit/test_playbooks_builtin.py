"""The built-in playbooks' decisions against a fake KubeClient (the boundary), with a fake clock.

What the API server really does with their writes is in tests/integration/test_playbooks_k8s.py;
here: every branch of every decision, exactly, with no wall time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from modelmedic.errors import KubeError, KubeForbidden, KubeNotFound, UnknownModelError
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

NOW = 1_800_000_000.0
KEY = idempotency_key("inc-1", "any", 0)


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


@dataclass
class FakeKube:
    """The KubeClient calls the built-ins make, over one Deployment held in memory; writes are recorded."""

    state: DeploymentState
    hpa: tuple[int, int] | None = None
    revision_created: float = NOW - 60
    previous_version: str | None = "v1"
    event_error: KubeError | None = None
    write_error: KubeError | None = None
    writes: list[tuple[str, Any]] = field(default_factory=list)

    async def get_deployment(self, namespace: str, name: str) -> DeploymentState:
        return self.state

    async def get_hpa_bounds(self, namespace: str, name: str) -> tuple[int, int]:
        if self.hpa is None:
            raise KubeNotFound(f"horizontalpodautoscaler {namespace}/{name}: not found")
        return self.hpa

    async def revision_created_at(self, namespace: str, name: str) -> datetime:
        return datetime.fromtimestamp(self.revision_created, UTC)

    def _write(self, what: str, value: Any) -> None:
        if self.write_error:
            raise self.write_error
        self.writes.append((what, value))

    async def annotate(self, namespace: str, name: str, annotations: dict[str, str], *, replicas: int | None = None) -> None:
        self._write("annotate", (annotations, replicas))
        self.state = replace(self.state, annotations={**self.state.annotations, **annotations},
                             replicas=self.state.replicas if replicas is None else replicas)

    async def set_hpa_bounds(self, namespace: str, name: str, low: int, high: int) -> None:
        self._write("hpa", (low, high))

    async def set_version(self, namespace: str, name: str, version: str, image: str | None = None) -> None:
        self._write("set_version", version)

    async def rollback(self, namespace: str, name: str) -> str | None:
        self._write("rollback", self.previous_version)
        return self.previous_version

    async def restart(self, namespace: str, name: str) -> None:
        self._write("restart", None)

    async def record_event(self, namespace: str, name: str, reason: str, message: str) -> None:
        if self.event_error:
            raise self.event_error
        self.writes.append(("event", reason))

    def changes(self) -> list[tuple[str, Any]]:
        return [w for w in self.writes if w[0] != "event"]


def deployment(replicas: int = 2, version: str = "v2", **annotations: str) -> DeploymentState:
    return DeploymentState("models", "fraud", replicas, replicas, replicas, version, f"img:{version}", 2, annotations)


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
    kube = FakeKube(deployment(**{LAST_ACTION_ANNOTATION: KEY}))
    outcome = await run(playbooks, name, context(kube))
    assert (outcome.status, outcome.message) == ("skipped", "already done (a replay of the same run)")
    assert kube.writes == []


@pytest.mark.parametrize(("name", "message"), [
    ("scale-out", "would scale 2 -> 3 through the Deployment"),
    ("rollback", "would roll v2 back to the previous revision"),
    ("restart", "would restart the 2 pods of models/fraud"),
])
async def test_dry_run_says_what_it_would_do_and_writes_nothing(playbooks: PlaybookRegistry, name: str, message: str) -> None:
    kube = FakeKube(deployment())
    outcome = await run(playbooks, name, context(kube, dry_run=True))
    assert (outcome.status, outcome.message) == ("dry_run", message)
    assert kube.writes == []


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_forbidden_write_fails_the_run_with_the_rbac_hint(playbooks: PlaybookRegistry, name: str) -> None:
    kube = FakeKube(deployment(), write_error=KubeForbidden("patch deployments models/fraud is forbidden: check deploy/rbac/role.yaml"))
    outcome = await run(playbooks, name, context(kube))
    assert outcome.status == "failed" and outcome.message.endswith("check deploy/rbac/role.yaml")


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_missing_event_does_not_undo_a_done_action(playbooks: PlaybookRegistry, name: str) -> None:
    kube = FakeKube(deployment(), event_error=KubeForbidden("create events is forbidden"))
    outcome = await run(playbooks, name, context(kube))
    assert outcome.status == "done" and kube.state.annotations[LAST_ACTION_ANNOTATION] == KEY


# ---------------------------------------------------------------- scale-out

async def test_scale_out_patches_replicas_and_marks_in_one_write(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(replicas=2))
    outcome = await run(playbooks, "scale-out", context(kube), step=2, max_replicas=10)
    assert outcome == Outcome.done("scaled 2 -> 4 through the Deployment", before=2, after=4, via="deployment")
    assert kube.writes == [("annotate", ({LAST_ACTION_ANNOTATION: KEY, LAST_SCALE_AT: iso(NOW)}, 4)),
                           ("event", "ModelmedicScaledOut")]


@pytest.mark.parametrize(("replicas", "hpa", "max_replicas", "message"), [
    (5, None, 5, "already at the ceiling (5 replicas, max 5)"),
    (3, (1, 3), 10, "already at the ceiling (3 replicas, max 3)"),
])
async def test_scale_out_never_passes_its_ceiling_or_the_hpas(
    playbooks: PlaybookRegistry, replicas: int, hpa: tuple[int, int] | None, max_replicas: int, message: str
) -> None:
    kube = FakeKube(deployment(replicas=replicas), hpa=hpa)
    outcome = await run(playbooks, "scale-out", context(kube), step=3, max_replicas=max_replicas)
    assert (outcome.status, outcome.message) == ("skipped", message) and kube.writes == []


async def test_scale_out_under_an_hpa_raises_its_floor_from_the_larger_of_replicas_and_floor(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(replicas=2), hpa=(4, 8))
    outcome = await run(playbooks, "scale-out", context(kube), step=1, max_replicas=10)
    assert (outcome.message, outcome.details["via"]) == ("scaled 4 -> 5 through HPA minReplicas 4 -> 5", "hpa")
    assert kube.changes() == [("hpa", (5, 8)), ("annotate", ({LAST_ACTION_ANNOTATION: KEY, LAST_SCALE_AT: iso(NOW)}, None))]


@pytest.mark.parametrize(("ago_s", "status"), [(0, "skipped"), (299.5, "skipped"), (300, "done"), (-5, "skipped")])
async def test_scale_out_is_stabilized_from_the_deployments_own_annotation(
    playbooks: PlaybookRegistry, ago_s: float, status: str
) -> None:
    kube = FakeKube(deployment(**{LAST_SCALE_AT: iso(NOW - ago_s)}))
    outcome = await run(playbooks, "scale-out", context(kube), stabilization_s=300)
    assert outcome.status == status


async def test_an_unreadable_stabilization_stamp_counts_as_never(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(**{LAST_SCALE_AT: "last tuesday"}))
    assert (await run(playbooks, "scale-out", context(kube))).status == "done"


# ---------------------------------------------------------------- rollback

async def test_rollback_to_the_previous_revision_marks_what_it_put_in_place(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(version="v2"))
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
    kube = FakeKube(deployment(version="v2"))
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
    kube = FakeKube(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube, registry=registry))
    assert (outcome.status, outcome.details["source"], kube.changes()[0]) == ("done", "previous revision", ("rollback", "v1"))


@pytest.mark.parametrize(("kube", "message"), [
    (FakeKube(deployment(version="v1")), "v2 is not deployed any more (v1 is): nothing to roll back"),
    (FakeKube(deployment(version="v2"), revision_created=NOW - 3601),
     "v2 was deployed 3601s ago, longer than recent_s=3600: not a fresh release, so not rolled back"),
    (FakeKube(deployment(version="v2", **{DEPLOYED_AT: iso(NOW - 7200)}), revision_created=NOW),
     "v2 was deployed 7200s ago, longer than recent_s=3600: not a fresh release, so not rolled back"),
    (FakeKube(replace(deployment(version="v2"), revision=1)),
     "v2 is the Deployment's first revision and the registry names no other: nothing to roll back to"),
    (FakeKube(deployment(version="v2", **{ROLLED_BACK_TO: "v2"})),
     "v2 is itself the result of a rollback: rolling back again would restore the version it replaced; this needs a person"),
])
async def test_rollback_only_acts_on_the_fresh_release_that_is_deployed(
    playbooks: PlaybookRegistry, kube: FakeKube, message: str
) -> None:
    outcome = await run(playbooks, "rollback", context(kube))
    assert (outcome.status, outcome.message) == ("skipped", message) and kube.writes == []


async def test_the_deploy_tools_stamp_wins_over_the_replicaset_age(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(version="v2", **{DEPLOYED_AT: iso(NOW - 60)}), revision_created=NOW - 86_400)
    assert (await run(playbooks, "rollback", context(kube))).status == "done"


# ---------------------------------------------------------------- restart

async def test_restart_restarts_then_marks(playbooks: PlaybookRegistry) -> None:
    kube = FakeKube(deployment(replicas=3, version="v7"))
    outcome = await run(playbooks, "restart", context(kube))
    assert outcome == Outcome.done("restarted the 3 pods of models/fraud", replicas=3, version="v7")
    assert kube.changes() == [("restart", None), ("annotate", ({LAST_ACTION_ANNOTATION: KEY}, None))]
