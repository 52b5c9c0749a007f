"""``rollback``: put back the version that ran before, when a fresh release is the likely cause.

It acts only when the anomalous version is the one deployed now and it was deployed
within ``recent_s``: a version that behaved for days and then slowed down points at the
load or a dependency, not at the release (scale-out's case). A second run after the
rollback finds another version deployed and does nothing, and the version it put in
place is marked (``modelmedic.io/rolled-back-to``) and never rolled back itself: a
rollback can never toggle back to the bad release.

The target is the model registry's last stable version other than the anomalous one
(``stable``, or ``previous stable`` when the anomalous one *is* stable) when the registry
knows the model, else the Deployment's previous revision (``kubectl rollout undo``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from modelmedic.errors import UnknownModelError
from modelmedic.remediations.api import Outcome, PlaybookContext, playbook
from modelmedic.kube import DEPLOYED_AT, ROLLED_BACK_TO
from modelmedic.remediations.marks import leave_event, marks, replay_of, seconds_since

"""The version a rollback put in place: never rolled back itself (that would toggle to the bad one)."""


class RollbackParams(BaseModel):
    """Roll back a version deployed recently to the one before it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    recent_s: float = Field(3600.0, gt=0)
    """Only a version deployed within this many seconds is rolled back."""


async def _registry_target(ctx: PlaybookContext, deployed: str) -> str | None:
    """The registry's last stable version other than ``deployed``; None when the registry cannot say."""
    if ctx.registry is None:
        return None
    try:
        versions = await asyncio.to_thread(ctx.registry.stable_versions, ctx.target.model)
    except UnknownModelError:
        return None
    return versions.stable if versions.stable not in (None, deployed) else versions.previous_stable


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
    """Roll a freshly deployed anomalous version back to the previous stable version or revision."""
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
    if not target and state.revision <= 1:
        return Outcome.skipped(f"{anomalous} is the Deployment's first revision and the registry names no other: "
                               "nothing to roll back to")
    if ctx.dry_run:
        return Outcome.dry_run(f"would roll {anomalous} back to " + (f"{target} (registry)" if target else "the previous revision"))
    if target:
        await ctx.k8s.set_version(namespace, name, target)
    else:
        target = await ctx.k8s.rollback(namespace, name)
    await ctx.k8s.annotate(namespace, name, {**marks(ctx.idempotency_key, ctx.clock()), ROLLED_BACK_TO: target or ""})
    message = f"rolled {anomalous} back to {target} ({source})"
    await leave_event(ctx, "ModelmedicRolledBack", f"{message}: {ctx.anomaly_class} anomaly ({ctx.kind})")
    return Outcome.done(message, before=anomalous, after=target, source=source)
