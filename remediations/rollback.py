"""``rollback``: put back a certified version that ran before, when a fresh release is the likely cause.

It acts only when the anomalous version is the one deployed now and it was deployed
within ``recent_s``: a version that behaved for days and then slowed down points at the
load or a dependency, not at the release (scale-out's case). A second run after the
rollback finds another version deployed and does nothing, and the version it put in
place is marked (``modelmedic.io/rolled-back-to``) and never rolled back itself: a
rollback can never toggle back to the bad release.

The target is the model registry's last stable version other than the anomalous one
(``stable``, or ``previous stable`` when the anomalous one *is* stable), rolled out with
everything its registry record names (image by digest, artifact URI and digest, version) in
one patch; when the registry names none, the Deployment's previous revision (``kubectl
rollout undo``: its whole pod template, image and environment included). On both paths the
target must be a version the registry would release (certified by a report that passed, not
retired: :func:`~modelmedic.registry.rollback_refusal`), and an anomalous version marked
irreversible in the registry (e.g. it migrated a schema) is never rolled back: the run is
skipped with the reason, and the incident's page says it. Without a registry nothing can be
shown to be certified, so nothing is rolled back unless ``require_certified`` is false.
Either way the rolling update keeps every Ready pod until its replacement is Ready.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from modelmedic.errors import KubeError, UnknownModelError, UnknownVersionError
from modelmedic.kube import DEPLOYED_AT, ROLLED_BACK_TO
from modelmedic.registry import rollback_refusal
from modelmedic.remediations.api import Outcome, PlaybookContext, playbook
from modelmedic.remediations.marks import leave_event, marks, replay_of, seconds_since


class RollbackParams(BaseModel):
    """Roll back a version deployed recently to a certified one that ran before it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    recent_s: float = Field(3600.0, gt=0)
    """Only a version deployed within this many seconds is rolled back."""
    require_certified: bool = True
    """Roll back only to a version the registry certified; false also allows the Deployment's previous
    revision unchecked when the service has no registry or the registry does not know the model."""


async def _registry_target(ctx: PlaybookContext, deployed: str) -> str | None:
    """The registry's last stable version other than ``deployed``; None when the registry cannot say."""
    if ctx.registry is None:
        return None
    try:
        versions = await asyncio.to_thread(ctx.registry.stable_versions, ctx.target.model)
    except UnknownModelError:
        return None
    return versions.stable if versions.stable not in (None, deployed) else versions.previous_stable


async def _refusal(ctx: PlaybookContext, params: RollbackParams, anomalous: str, target: str | None) -> str | None:
    """Why rolling ``anomalous`` back to ``target`` must be left to a person, or None when it may go ahead."""
    if ctx.registry is None or not await asyncio.to_thread(_knows_model, ctx):
        if params.require_certified:
            return (f"no model registry knows {ctx.target.model}, so {target or 'the previous revision'} cannot be "
                    "shown to be certified (configure the registry, or set require_certified: false)")
        return None
    if target is None:
        return f"the previous revision of {ctx.target.deployment} names no version the registry could check"
    try:
        return await asyncio.to_thread(rollback_refusal, ctx.registry, ctx.target.model, anomalous, target)
    except UnknownVersionError as exc:
        return str(exc)


def _knows_model(ctx: PlaybookContext) -> bool:
    try:
        ctx.registry.spec(ctx.target.model)  # type: ignore[union-attr]
    except UnknownModelError:
        return False
    return True


async def _deployed_age_s(ctx: PlaybookContext, annotation: str | None) -> float:
    """How long ago the current version was deployed: the deploy tool's annotation, else its ReplicaSet's birth."""
    now = ctx.clock()
    age = seconds_since(annotation, now)
    if age is None:
        created: datetime = await ctx.k8s.revision_created_at(ctx.target.namespace, ctx.target.deployment)
        age = now - created.timestamp()
    return age


@playbook(name="rollback", timeout_s=30)
async def rollback(ctx: PlaybookContext, params: RollbackParams) -> Outcome:
    """Roll a freshly deployed anomalous version back to a certified version that ran before it."""
    namespace, name = ctx.target.namespace, ctx.target.deployment
    state = await ctx.k8s.get_deployment(namespace, name)
    if replay := replay_of(state, ctx):
        return replay
    anomalous = ctx.target.version
    if state.version != anomalous:
        return Outcome.skipped(f"{anomalous} is not deployed any more ({state.version} is): nothing to roll back")
    if state.annotations.get(ROLLED_BACK_TO) == anomalous:
        return Outcome.skipped(
            f"{anomalous} is itself the result of a rollback: rolling back again would restore the version "
            "it replaced; this needs a person"
        )
    age = await _deployed_age_s(ctx, state.annotations.get(DEPLOYED_AT))
    if age > params.recent_s:
        return Outcome.skipped(
            f"{anomalous} was deployed {age:.0f}s ago, longer than recent_s={params.recent_s:g}: "
            "not a fresh release, so not rolled back", deployed_age_s=round(age)
        )
    target = await _registry_target(ctx, anomalous)
    source = "registry" if target else "previous revision"
    if target is None:
        has_previous = state.revision > 1
        if has_previous:
            try:
                target = await ctx.k8s.previous_version(namespace, name)
            except KubeError:  # the older ReplicaSets were pruned (revisionHistoryLimit)
                has_previous = False
        if not has_previous:
            return Outcome.skipped(f"{anomalous} is the Deployment's first revision and the registry names no other: "
                                   "nothing to roll back to")
    if refused := await _refusal(ctx, params, anomalous, target):
        return Outcome.skipped(f"not rolling {anomalous} back to {target or 'the previous revision'}: {refused}; "
                               "this needs a person", refused=refused, target=target, source=source)
    if ctx.dry_run:
        return Outcome.dry_run(f"would roll {anomalous} back to {target or 'the previous revision'} ({source})")
    if source == "registry":
        info = await asyncio.to_thread(ctx.registry.version_info, ctx.target.model, target)  # type: ignore[union-attr]
        await ctx.k8s.set_version(namespace, name, target, image=info.image, env=info.pod_env(),
                                  pod_annotations=info.pod_annotations())
    else:
        target = await ctx.k8s.rollback(namespace, name)
    await ctx.k8s.annotate(namespace, name, {**marks(ctx.idempotency_key, ctx.clock()), ROLLED_BACK_TO: target or ""})
    message = f"rolled {anomalous} back to {target} ({source})"
    await leave_event(ctx, "ModelmedicRolledBack", f"{message}: {ctx.anomaly_class} anomaly ({ctx.kind})")
    return Outcome.done(message, before=anomalous, after=target, source=source)
