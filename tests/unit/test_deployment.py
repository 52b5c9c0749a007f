"""Deployment decisions against a fake KubeClient (the boundary) and a real git registry."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from modelmedic.release.deployment import (
    ARTIFACT_ANNOTATION,
    DIGEST_ANNOTATION,
    ReleaseOptions,
    deploy,
    probe_health,
    rollback,
)
from modelmedic.errors import NoRollbackTargetError, NotCertifiedError
from modelmedic.registry import Registry
from modelmedic.kube import DEPLOYED_AT
from modelmedic.remediations.rollback import ROLLED_BACK_TO
from modelmedic.testing import FakeKube, deployment_state

NOW = 1_764_072_000.0
OPTS = ReleaseOptions(namespace="models", poll_s=0.01)
REPORT = {"latency_p50_ms": 5, "latency_p95_ms": 10, "latency_p99_ms": 20, "throughput_rps": 50, "error_rate": 0.0,
          "quality": {"accuracy": 0.9}, "passed": True}


def image(n: int) -> str:
    return f"registry.local/fraud@sha256:{str(n) * 64}"


def pinned(n: int) -> dict[str, str]:
    """What a pod of fraud v<n> is handed: the artifact and its digest."""
    return {"MODEL_ARTIFACT": f"s3://m/fraud/{n}", "MODEL_DIGEST": "sha256:" + str(n) * 64}


def models(**deployments: str) -> FakeKube:
    """Deployments as name -> version (``fraud_canary=`` names fraud-canary), 2 replicas each, rolled out."""
    return FakeKube(*(deployment_state(name.replace("_", "-"), version) for name, version in deployments.items()),
                    clock=lambda: NOW)


def history(kube: FakeKube) -> list[tuple[str, str]]:
    """(Deployment, version) of every set_version, in order."""
    return [(w.deployment, w.value) for w in kube.writes if w.call == "set_version"]


def annotations(kube: FakeKube, name: str) -> dict[str, str]:
    return dict(kube.deployments[name].annotations)


def version(kube: FakeKube, name: str) -> str | None:
    return kube.deployments[name].version


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """fraud v1 (stable), v2 (certified), v3 (registered only), v4 (certification failed)."""
    reg = Registry.init(tmp_path / "registry")
    reg.register_model("fraud", description="Card fraud", owners=["risk"],
                       interface={"input": {"type": "object"}, "output": {"type": "integer"}})
    for n in (1, 2, 3, 4):
        reg.add_version("fraud", f"{n}.0.0", f"release {n}", f"s3://m/fraud/{n}", "sha256:" + str(n) * 64,
                        image=image(n))
    for n in (1, 2):
        reg.attach_certification("fraud", f"{n}.0.0", REPORT)
        reg.promote("fraud", f"{n}.0.0", "certified")
    reg.attach_certification("fraud", "4.0.0", {**REPORT, "passed": False})
    reg.promote("fraud", "1.0.0", "stable")
    return reg


def run_deploy(kube: FakeKube, registry: Registry, version: str, **kwargs: object):
    return deploy(kube, registry, "fraud", version, OPTS, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


async def test_an_upgrade_runs_the_version_marks_it_and_keeps_the_previous_stable_as_canary(registry: Registry) -> None:
    kube = models(fraud="v1.0.0", fraud_canary="v0.9.0")
    lines: list[str] = []
    result = await run_deploy(kube, registry, "2.0.0", progress=lines.append)
    assert (result.status, result.previous, result.canary, result.forced) == ("deployed", "v1.0.0", "v1.0.0", False)
    assert history(kube) == [("fraud", "v2.0.0"), ("fraud-canary", "v1.0.0")]
    assert annotations(kube, "fraud") == {DEPLOYED_AT: datetime.fromtimestamp(NOW, UTC).isoformat()}
    assert (kube.deployments["fraud"].image, kube.env["fraud"]) == (image(2), pinned(2)), "image, artifact, version at once"
    assert kube.pod_annotations["fraud"] == {ARTIFACT_ANNOTATION: "s3://m/fraud/2", DIGEST_ANNOTATION: "sha256:" + "2" * 64}
    assert (kube.deployments["fraud-canary"].image, kube.env["fraud-canary"]) == (image(1), pinned(1))
    versions = registry.stable_versions("fraud")
    assert (versions.stable, versions.previous_stable, versions.canary) == ("v2.0.0", "v1.0.0", "v1.0.0")
    assert lines[0] == "deploying fraud@v2.0.0 to models/fraud (running v1.0.0)"
    assert [(e.reason, e.message) for e in kube.events] == [("ModelmedicDeployed", "deployed fraud@v2.0.0 (was v1.0.0)")]


async def test_without_a_canary_deployment_the_upgrade_still_succeeds(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    lines: list[str] = []
    result = await run_deploy(kube, registry, "2.0.0", progress=lines.append)
    assert result.ok and result.canary is None
    assert "no models/fraud-canary Deployment" in lines[-1]
    assert registry.stable_versions("fraud").canary is None


@pytest.mark.parametrize(("version", "why"), [
    ("3.0.0", "fraud@v3.0.0 was never certified"),
    ("4.0.0", "fraud@v4.0.0's latest certification failed its gates"),
])
async def test_an_uncertified_version_is_refused_and_nothing_changes(registry: Registry, version: str, why: str) -> None:
    kube = models(fraud="v1.0.0")
    with pytest.raises(NotCertifiedError, match=f"refusing to deploy: {why}.*pass --force"):
        await run_deploy(kube, registry, version)
    assert history(kube) == [] and registry.stable_version("fraud") == "v1.0.0"


async def test_a_forced_deploy_is_logged_and_recorded(registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    kube = models(fraud="v1.0.0")
    with caplog.at_level(logging.WARNING, "modelmedic.release.deployment"):
        result = await run_deploy(kube, registry, "3.0.0", force=True)
    assert result.ok and result.forced
    assert "forced deploy of fraud@v3.0.0 to models/fraud: fraud@v3.0.0 was never certified" in caplog.text
    stable = [e for e in registry.history("fraud") if e.stage == "stable"][-1]
    assert stable.version == "v3.0.0" and "forced" in stable.message


@pytest.mark.parametrize(("failure", "problem"), [
    ("unready", "0/2 replicas ready"),
    ("stuck", "did not finish rolling out"),
])
async def test_a_release_failing_its_checks_is_undone_and_retired(registry: Registry, failure: str, problem: str) -> None:
    kube = models(fraud="v1.0.0", fraud_canary="v0.9.0")
    getattr(kube, failure).add("v2.0.0")
    result = await run_deploy(kube, registry, "2.0.0")
    assert result.status == "rolled-back" and problem in result.problems[0]
    assert history(kube) == [("fraud", "v2.0.0"), ("fraud", "v1.0.0")]  # the canary is not touched
    assert annotations(kube, "fraud")[ROLLED_BACK_TO] == "v1.0.0"
    assert (kube.deployments["fraud"].image, kube.env["fraud"]) == (image(1), pinned(1))
    assert registry.stable_version("fraud") == "v1.0.0" and registry.stage("fraud", "v2.0.0") == "retired"
    retired = registry.history("fraud")[-1]
    assert retired.stage == "retired" and problem in retired.message
    assert kube.events[-1].reason == "ModelmedicRolledBack"


async def test_a_redeploy_of_the_stable_version_records_nothing_new(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    before = len(registry.history("fraud"))
    result = await run_deploy(kube, registry, "1.0.0")
    assert result.ok and len(registry.history("fraud")) == before


async def test_rollback_goes_to_the_previous_stable_and_records_it(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    await run_deploy(kube, registry, "2.0.0")
    result = await rollback(kube, registry, "fraud", OPTS, clock=lambda: NOW)
    assert (result.status, result.version, result.previous) == ("deployed", "v1.0.0", "v2.0.0")
    assert version(kube, "fraud") == "v1.0.0" and annotations(kube, "fraud")[ROLLED_BACK_TO] == "v1.0.0"
    assert (kube.deployments["fraud"].image, kube.env["fraud"]) == (image(1), pinned(1))
    assert registry.stable_version("fraud") == "v1.0.0"
    assert "rollback of models/fraud from v2.0.0" in registry.history("fraud")[-1].message


async def test_rollback_to_the_stable_version_when_something_else_runs(registry: Registry) -> None:
    kube = models(fraud="v3.0.0")  # e.g. put there by hand
    result = await rollback(kube, registry, "fraud", OPTS)
    assert result.ok and version(kube, "fraud") == "v1.0.0"


async def test_rollback_to_a_named_version_and_its_refusals(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    assert (await rollback(kube, registry, "fraud", OPTS, to="2.0.0")).version == "v2.0.0"
    with pytest.raises(NotCertifiedError, match="refusing to roll back to v3.0.0"):
        await rollback(kube, registry, "fraud", OPTS, to="3.0.0")


async def test_rollback_without_a_target_asks_for_one(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    with pytest.raises(NoRollbackTargetError, match="give one with --to VERSION"):
        await rollback(kube, registry, "fraud", OPTS)


async def test_a_failing_rollback_is_reported_not_undone(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    await run_deploy(kube, registry, "2.0.0")
    kube.unready.add("v1.0.0")
    result = await rollback(kube, registry, "fraud", OPTS)
    assert result.status == "failed" and version(kube, "fraud") == "v1.0.0"
    assert registry.stable_version("fraud") == "v2.0.0"


def health(status: int, version: str = "v2.0.0") -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json={"status": "x", "version": version}))


async def test_the_health_probe_wants_200_from_the_deployed_version() -> None:
    url = "http://fraud/healthz"
    assert await probe_health(url, "v2.0.0", 0.1, poll_s=0.02, transport=health(200)) is None
    assert await probe_health(url, "v2.0.0", 0.1, poll_s=0.02, transport=health(503)) == \
        "health check failed after 0.1s: http://fraud/healthz answered 503"
    assert await probe_health(url, "v2.0.0", 0.1, poll_s=0.02, transport=health(200, "v1.0.0")) == \
        "health check failed after 0.1s: http://fraud/healthz serves v1.0.0, not v2.0.0"


async def test_an_unhealthy_server_rolls_the_release_back(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    opts = ReleaseOptions(namespace="models", poll_s=0.01, health_url="http://fraud/healthz", health_timeout_s=0.05)
    result = await deploy(kube, registry, "fraud", "2.0.0", opts, transport=health(503))
    assert result.status == "rolled-back" and "answered 503" in result.problems[0]
    assert version(kube, "fraud") == "v1.0.0"


async def test_a_failed_deploy_of_an_irreversible_version_is_not_undone_automatically(registry: Registry) -> None:
    registry.mark_irreversible("fraud", "2.0.0", "drops the v1 feature table")
    kube = models(fraud="v1.0.0")
    kube.unready.add("v2.0.0")
    result = await run_deploy(kube, registry, "2.0.0")
    assert result.status == "failed" and history(kube) == [("fraud", "v2.0.0")]
    assert result.problems[-1] == ("not rolled back: fraud@v2.0.0 is marked irreversible (drops the v1 feature table): "
                                   "it is never rolled back automatically")
    assert registry.stage("fraud", "v2.0.0") == "certified" and kube.events[-1].reason == "ModelmedicRollbackHeld"


async def test_a_failed_deploy_is_undone_only_to_a_certified_version(registry: Registry) -> None:
    kube = models(fraud="v3.0.0")  # put there by hand, never certified
    kube.unready.add("v2.0.0")
    result = await run_deploy(kube, registry, "2.0.0")
    assert result.status == "failed" and version(kube, "fraud") == "v2.0.0"
    assert result.problems[-1] == "not rolled back: fraud@v3.0.0 was never certified (it has no certification report)"


async def test_a_person_rolls_back_from_an_irreversible_version_only_with_force(registry: Registry) -> None:
    kube = models(fraud="v1.0.0")
    await run_deploy(kube, registry, "2.0.0")
    registry.mark_irreversible("fraud", "2.0.0", "migrated the schema")
    with pytest.raises(NotCertifiedError, match=r"fraud@v2.0.0 is marked irreversible \(migrated the schema\)"):
        await rollback(kube, registry, "fraud", OPTS)
    result = await rollback(kube, registry, "fraud", OPTS, force=True)
    assert result.ok and result.forced and version(kube, "fraud") == "v1.0.0"
    assert "forced: fraud@v2.0.0 is marked irreversible" in registry.history("fraud")[-1].message


async def test_a_model_that_requires_a_live_test_deploys_only_after_a_passing_verdict(registry: Registry) -> None:
    spec = registry.spec("fraud")
    registry.register_model("fraud", description=spec.description, owners=spec.owners, interface=spec.interface,
                            gates={"require_live_test": True}, update=True)
    kube = models(fraud="v1.0.0")
    with pytest.raises(NotCertifiedError, match="fraud requires a passing live test and fraud@v2.0.0 has none"):
        await run_deploy(kube, registry, "2.0.0")
    registry.attach_live_test("fraud", "2.0.0", {"passed": False}, "# failed")
    with pytest.raises(NotCertifiedError, match="fraud@v2.0.0's live test failed"):
        await run_deploy(kube, registry, "2.0.0")
    forced = await run_deploy(kube, registry, "2.0.0", force=True)
    assert forced.ok and forced.forced and "forced: fraud@v2.0.0's live test failed" in registry.history("fraud")[-1].message
    registry.attach_live_test("fraud", "2.0.0", {"passed": True}, "# passed")
    assert (await run_deploy(kube, registry, "2.0.0")).ok
