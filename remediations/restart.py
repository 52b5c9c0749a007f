"""``restart``: replace every pod of the model's Deployment through a rolling update.

For a model server stuck in a bad state (a leaked connection pool, a wedged worker) that
a fresh process fixes. Same as ``kubectl rollout restart``: capacity stays up throughout.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from modelmedic.remediations.api import Outcome, PlaybookContext, playbook
from modelmedic.remediations.marks import leave_event, marks, replay_of


class RestartParams(BaseModel):
    """No parameters: the Deployment's own rollout strategy decides the pace."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@playbook(name="restart", timeout_s=30)
async def restart(ctx: PlaybookContext, params: RestartParams) -> Outcome:
    """Rolling restart of the model's Deployment (kubectl rollout restart)."""
    namespace, name = ctx.target.namespace, ctx.target.deployment
    state = await ctx.k8s.get_deployment(namespace, name)
    if replay := replay_of(state, ctx):
        return replay
    if ctx.dry_run:
        return Outcome.dry_run(f"would restart the {state.replicas} pods of {namespace}/{name}")
    await ctx.k8s.restart(namespace, name)
    await ctx.k8s.annotate(namespace, name, marks(ctx.idempotency_key, ctx.clock()))
    message = f"restarted the {state.replicas} pods of {namespace}/{name}"
    await leave_event(ctx, "ModelmedicRestarted", f"{message}: {ctx.anomaly_class} anomaly ({ctx.kind})")
    return Outcome.done(message, replicas=state.replicas, version=state.version)
