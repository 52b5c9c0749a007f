"""The built-in playbooks' decisions against a fake KubeClient (the boundary), with a fake clock.

What the API server really does with their writes is in tests/integration/test_playbooks_k8s.py;
here: every branch of every decision, exactly, with no wall time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelmedic.errors import KubeError, KubeForbidden
from modelmedic.kube import DeploymentState
from modelmedic.registry import ARTIFACT_ANNOTATION, DIGEST_ANNOTATION, Registry
from modelmedic.remediations import (
    LAST_ACTION_ANNOTATION,
    Outcome,
    PlaybookContext,
    PlaybookRegistry,
    Target,
    idempotency_key,
    run_playbook,
)
from modelmedic.kube import DEPLOYED_AT, LAST_SCALE_AT
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

UNCHECKED = {"rollback": {"require_certified": False}}
"""Params that let each built-in act on a bare Deployment (rollback needs a registry otherwise)."""

@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_replay_with_the_same_key_does_nothing(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(**{LAST_ACTION_ANNOTATION: KEY}))
    outcome = await run(playbooks, name, context(kube))
    assert (outcome.status, outcome.message) == ("skipped", "already done (a replay of the same run)")
    assert kube.writes == []


@pytest.mark.parametrize(("name", "message"), [
    ("scale-out", "would scale 2 -> 3 through the Deployment"),
    ("rollback", "would roll v2 back to v1 (previous revision)"),
    ("restart", "would restart the 2 pods of models/fraud"),
])
async def test_dry_run_says_what_it_would_do_and_writes_nothing(playbooks: PlaybookRegistry, name: str, message: str) -> None:
    kube = fake(deployment())
    outcome = await run(playbooks, name, context(kube, dry_run=True), **UNCHECKED.get(name, {}))
    assert (outcome.status, outcome.message) == ("dry_run", message)
    assert kube.writes == []


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_forbidden_write_fails_the_run_with_the_rbac_hint(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(), write_error=KubeForbidden("patch deployments models/fraud is forbidden: check deploy/rbac/role.yaml"))
    outcome = await run(playbooks, name, context(kube), **UNCHECKED.get(name, {}))
    assert outcome.status == "failed" and outcome.message.endswith("check deploy/rbac/role.yaml")


@pytest.mark.parametrize("name", ["scale-out", "rollback", "restart"])
async def test_a_missing_event_does_not_undo_a_done_action(playbooks: PlaybookRegistry, name: str) -> None:
    kube = fake(deployment(), event_error=KubeForbidden("create events is forbidden"))
    outcome = await run(playbooks, name, context(kube), **UNCHECKED.get(name, {}))
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

REPORT = {"latency_p50_ms": 5, "latency_p95_ms": 10, "latency_p99_ms": 20, "throughput_rps": 50, "error_rate": 0.0,
          "quality": {"accuracy": 0.9}, "passed": True}


def image(n: int) -> str:
    return f"registry.local/fraud@sha256:{str(n) * 64}"


@pytest.fixture
def git_registry(tmp_path: Path) -> Registry:
    """fraud v0, v1, v2 registered with images; v0 and v1 certified; v1 stable; v2 deployed, never certified."""
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud", owners=["risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "integer"}})
    for n in (0, 1, 2):
        reg.add_version("fraud", f"{n}.0.0", f"release {n}", f"s3://m/fraud/{n}", "sha256:" + str(n) * 64, image=image(n))
    for n in (0, 1):
        reg.attach_certification("fraud", f"{n}.0.0", REPORT)
        reg.promote("fraud", f"{n}.0.0", "certified")
    reg.promote("fraud", "1.0.0", "stable")
    return reg


async def test_without_a_registry_nothing_is_shown_certified_so_nothing_is_rolled_back(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube))
    assert outcome.status == "skipped" and kube.writes == []
    assert outcome.message == ("not rolling v2 back to v1: no model registry knows fraud, so v1 cannot be shown to be "
                               "certified (configure the registry, or set require_certified: false); this needs a person")


async def test_rollback_to_the_previous_revision_when_allowed_unchecked_marks_what_it_put_in_place(
    playbooks: PlaybookRegistry
) -> None:
    kube = fake(deployment(version="v2"))
    outcome = await run(playbooks, "rollback", context(kube), require_certified=False)
    assert outcome == Outcome.done("rolled v2 back to v1 (previous revision)", before="v2", after="v1", source="previous revision")
    assert kube.changes() == [("rollback", "v1"), ("annotate", ({LAST_ACTION_ANNOTATION: KEY, ROLLED_BACK_TO: "v1"}, None))]


@pytest.mark.parametrize(("stable", "expected"), [
    (None, "v1.0.0"),       # v2 deployed by hand, never promoted: back to stable v1
    ("2.0.0", "v1.0.0"),    # v2 is the stable one (forced): back to the previous stable v1
])
async def test_rollback_via_the_registry_sets_image_artifact_and_version_together(
    playbooks: PlaybookRegistry, git_registry: Registry, stable: str | None, expected: str
) -> None:
    if stable:
        git_registry.promote("fraud", stable, "stable", force=True, reason="test")
    kube = fake(deployment(version="v2.0.0"), previous="v0.0.0")
    outcome = await run(playbooks, "rollback", context(kube, version="v2.0.0", registry=git_registry))
    assert (outcome.status, outcome.details["source"], outcome.details["after"]) == ("done", "registry", expected)
    assert kube.changes()[0] == ("set_version", expected)
    assert kube.deployments["fraud"].image == image(1)
    assert kube.env["fraud"] == {"MODEL_ARTIFACT": "s3://m/fraud/1", "MODEL_DIGEST": "sha256:" + "1" * 64}
    assert kube.pod_annotations["fraud"] == {ARTIFACT_ANNOTATION: "s3://m/fraud/1", DIGEST_ANNOTATION: "sha256:" + "1" * 64}


async def test_the_previous_revision_is_a_target_only_when_the_registry_certified_it(
    playbooks: PlaybookRegistry, git_registry: Registry
) -> None:
    git_registry.promote("fraud", "1.0.0", "retired", force=True, reason="test: no stable left")
    assert git_registry.stable_versions("fraud").stable is None
    certified = fake(deployment(version="v2.0.0"), previous="v0.0.0")
    outcome = await run(playbooks, "rollback", context(certified, version="v2.0.0", registry=git_registry))
    assert (outcome.status, outcome.details["source"], certified.changes()[0]) == (
        "done", "previous revision", ("rollback", "v0.0.0"))

    for previous, why in (("v1.0.0", "fraud@v1.0.0 is retired"),
                          ("v9.0.0", "fraud@v9.0.0 is not registered (registered: v0.0.0, v1.0.0, v2.0.0)")):
        kube = fake(deployment(version="v2.0.0"), previous=previous)
        outcome = await run(playbooks, "rollback", context(kube, version="v2.0.0", registry=git_registry),
                            require_certified=False)  # the registry knows the model: it is asked regardless
        assert outcome.status == "skipped" and kube.writes == []
        assert outcome.message.startswith(f"not rolling v2.0.0 back to {previous}: {why}")


async def test_an_uncertified_registry_target_is_not_rolled_back_to(playbooks: PlaybookRegistry, git_registry: Registry) -> None:
    git_registry.attach_certification("fraud", "1.0.0", {**REPORT, "passed": False})  # stable v1's new report failed
    kube = fake(deployment(version="v2.0.0"))
    outcome = await run(playbooks, "rollback", context(kube, version="v2.0.0", registry=git_registry))
    assert outcome.status == "skipped" and kube.writes == []
    assert "fraud@v1.0.0's latest certification failed its gates" in outcome.message


async def test_an_irreversible_version_is_never_rolled_back_only_reported_with_the_reason(
    playbooks: PlaybookRegistry, git_registry: Registry
) -> None:
    git_registry.mark_irreversible("fraud", "2.0.0", "migrated the feature store schema to v5")
    kube = fake(deployment(version="v2.0.0"))
    outcome = await run(playbooks, "rollback", context(kube, version="v2.0.0", registry=git_registry))
    assert outcome.status == "skipped" and kube.writes == []
    assert outcome.details["refused"] == ("fraud@v2.0.0 is marked irreversible (migrated the feature store schema to "
                                          "v5): it is never rolled back automatically")
    assert outcome.message.endswith("this needs a person")


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
    assert (await run(playbooks, "rollback", context(kube), require_certified=False)).status == "done"


# ---------------------------------------------------------------- restart

async def test_restart_restarts_then_marks(playbooks: PlaybookRegistry) -> None:
    kube = fake(deployment(replicas=3, version="v7"))
    outcome = await run(playbooks, "restart", context(kube))
    assert outcome == Outcome.done("restarted the 3 pods of models/fraud", replicas=3, version="v7")
    assert kube.changes() == [("restart", None), ("annotate", ({LAST_ACTION_ANNOTATION: KEY}, None))]
