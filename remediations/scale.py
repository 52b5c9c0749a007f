"""``scale-out``: more replicas for a model that is too slow or overloaded.

Scales the Deployment, or raises its HorizontalPodAutoscaler's ``minReplicas`` when it
has one (an HPA named like the Deployment): scaling the Deployment under an HPA would be
undone at its next sync. Never past ``max_replicas`` nor the HPA's ``maxReplicas``.

Like the HPA's scale-up stabilization, it does not scale again within
``stabilization_s`` of its last scale, whichever incident asked: the window is read from
the Deployment's ``modelmedic.io/last-scale-at`` annotation, so it survives restarts and
holds across the service's replicas. Without an HPA, the new replica count, the
idempotency key and that timestamp are one patch: they land together or not at all.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelmedic.errors import KubeNotFound
from modelmedic.remediations.api import Outcome, PlaybookContext, playbook
from modelmedic.kube import LAST_SCALE_AT
from modelmedic.remediations.marks import leave_event, marks, replay_of, seconds_since


class ScaleOutParams(BaseModel):
    """Add replicas to the model's Deployment, never past a ceiling, at most once per stabilization window."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    step: int = Field(1, ge=1)
    """Replicas added per run."""
    max_replicas: int = Field(10, ge=1)
    """Ceiling: never scale past this (nor past the HPA's maxReplicas)."""
    stabilization_s: float = Field(300.0, ge=0)
    """No second scale-out of the same Deployment within this many seconds of the last one."""


async def _hpa_bounds(ctx: PlaybookContext) -> tuple[int, int] | None:
    """(minReplicas, maxReplicas) of the Deployment's HPA, None when it has none."""
    try:
        return await ctx.k8s.get_hpa_bounds(ctx.target.namespace, ctx.target.deployment)
    except KubeNotFound:
        return None


@playbook(name="scale-out", timeout_s=30)
async def scale_out(ctx: PlaybookContext, params: ScaleOutParams) -> Outcome:
    """Add replicas (or raise the HPA's floor) by ``step``, bounded by ``max_replicas`` and stabilized."""
    namespace, name = ctx.target.namespace, ctx.target.deployment
    state = await ctx.k8s.get_deployment(namespace, name)
    if replay := replay_of(state, ctx):
        return replay
    since = seconds_since(state.annotations.get(LAST_SCALE_AT), ctx.clock())
    if since is not None and since < params.stabilization_s:
        return Outcome.skipped(
            f"scaled {since:.0f}s ago; stabilizing for {params.stabilization_s:g}s", replicas=state.replicas
        )
    hpa = await _hpa_bounds(ctx)
    ceiling = min(params.max_replicas, hpa[1]) if hpa else params.max_replicas
    current = max(state.replicas, hpa[0]) if hpa else state.replicas
    wanted = min(current + params.step, ceiling)
    if wanted <= current:
        return Outcome.skipped(f"already at the ceiling ({current} replicas, max {ceiling})", replicas=current)
    how = f"HPA minReplicas {hpa[0]} -> {wanted}" if hpa else "the Deployment"
    details = {"before": current, "after": wanted, "via": "hpa" if hpa else "deployment"}
    if ctx.dry_run:
        return Outcome.dry_run(f"would scale {current} -> {wanted} through {how}", **details)
    stamp = marks(ctx.idempotency_key, ctx.clock(), LAST_SCALE_AT)
    if hpa:
        await ctx.k8s.set_hpa_bounds(namespace, name, wanted, hpa[1])
        await ctx.k8s.annotate(namespace, name, stamp)
    else:
        await ctx.k8s.annotate(namespace, name, stamp, replicas=wanted)
    message = f"scaled {current} -> {wanted} through {how}"
    await leave_event(ctx, "ModelmedicScaledOut", f"{message}: {ctx.anomaly_class} anomaly ({ctx.kind})")
    return Outcome.done(message, **details)
